"""Deprecated: the former path of :mod:`loflex.diffusion.loss`, kept for one release.

``import loflex.loss`` warns once and gives the module :mod:`loflex.diffusion.loss`
itself: the same objects, and monkeypatching either path patches both. Import the new
path instead.
"""

import sys
import warnings

from loflex.diffusion import loss as _moved

warnings.warn("loflex.loss is deprecated and will be removed in the next release; "
              "import loflex.diffusion.loss", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved
