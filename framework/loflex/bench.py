"""Deprecated: the former path of :mod:`loflex.training.bench`, kept for one release.

``import loflex.bench`` warns once and gives the module :mod:`loflex.training.bench`
itself: the same objects, and monkeypatching either path patches both. Import the new
path instead.
"""

import sys
import warnings

from loflex.training import bench as _moved

warnings.warn("loflex.bench is deprecated and will be removed in the next release; "
              "import loflex.training.bench", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved
