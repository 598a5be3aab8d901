"""Deprecated: the former path of :mod:`loflex.sampling.inference`, kept for one release.

``import loflex.inference`` warns once and gives the module :mod:`loflex.sampling.inference`
itself: the same objects, and monkeypatching either path patches both. Import the new
path instead.
"""

import sys
import warnings

from loflex.sampling import inference as _moved

warnings.warn("loflex.inference is deprecated and will be removed in the next release; "
              "import loflex.sampling.inference", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved
