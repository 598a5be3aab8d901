"""Deprecated: the former path of :mod:`loflex.diffusion.batch`, kept for one release.

``import loflex.batch`` warns once and gives the module :mod:`loflex.diffusion.batch`
itself: the same objects, and monkeypatching either path patches both. Import the new
path instead.
"""

import sys
import warnings

from loflex.diffusion import batch as _moved

warnings.warn("loflex.batch is deprecated and will be removed in the next release; "
              "import loflex.diffusion.batch", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved
