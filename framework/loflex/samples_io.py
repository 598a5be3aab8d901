"""Deprecated: the former path of :mod:`loflex.sampling.samples_io`, kept for one release.

``import loflex.samples_io`` warns once and gives the module :mod:`loflex.sampling.samples_io`
itself: the same objects, and monkeypatching either path patches both. Import the new
path instead.
"""

import sys
import warnings

from loflex.sampling import samples_io as _moved

warnings.warn("loflex.samples_io is deprecated and will be removed in the next release; "
              "import loflex.sampling.samples_io", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved
