"""Deprecated: the former path of :mod:`loflex.diffusion.schedule`, kept for one release.

``import loflex.schedule`` warns once and gives the module :mod:`loflex.diffusion.schedule`
itself: the same objects, and monkeypatching either path patches both. Import the new
path instead.
"""

import sys
import warnings

from loflex.diffusion import schedule as _moved

warnings.warn("loflex.schedule is deprecated and will be removed in the next release; "
              "import loflex.diffusion.schedule", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved
