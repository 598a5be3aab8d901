"""Deprecated: the former path of :mod:`loflex.training.data`, kept for one release.

``import loflex.data`` warns once and gives the module :mod:`loflex.training.data`
itself: the same objects, and monkeypatching either path patches both. Import the new
path instead.
"""

import sys
import warnings

from loflex.training import data as _moved

warnings.warn("loflex.data is deprecated and will be removed in the next release; "
              "import loflex.training.data", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved
