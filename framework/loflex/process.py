"""Deprecated: the former path of :mod:`loflex.diffusion.process`, kept for one release.

``import loflex.process`` warns once and gives the module :mod:`loflex.diffusion.process`
itself: the same objects, and monkeypatching either path patches both. Import the new
path instead.
"""

import sys
import warnings

from loflex.diffusion import process as _moved

warnings.warn("loflex.process is deprecated and will be removed in the next release; "
              "import loflex.diffusion.process", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved
