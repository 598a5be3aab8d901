"""Deprecated: the former path of :mod:`loflex.diffusion.order`, kept for one release.

``import loflex.order`` warns once and gives the module :mod:`loflex.diffusion.order`
itself: the same objects, and monkeypatching either path patches both. Import the new
path instead.
"""

import sys
import warnings

from loflex.diffusion import order as _moved

warnings.warn("loflex.order is deprecated and will be removed in the next release; "
              "import loflex.diffusion.order", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved
