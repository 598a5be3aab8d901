"""Deprecated: the former path of :mod:`loflex.sampling.sampler`, kept for one release.

``import loflex.sampler`` warns once and gives the module :mod:`loflex.sampling.sampler`
itself: the same objects, and monkeypatching either path patches both. Import the new
path instead.
"""

import sys
import warnings

from loflex.sampling import sampler as _moved

warnings.warn("loflex.sampler is deprecated and will be removed in the next release; "
              "import loflex.sampling.sampler", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved
