"""Deprecated: the former path of :mod:`loflex.inspection.insertion_times`, kept for one release.

``import loflex.insertion_times`` warns once and gives the module :mod:`loflex.inspection.insertion_times`
itself: the same objects, and monkeypatching either path patches both. Import the new
path instead.
"""

import sys
import warnings

from loflex.inspection import insertion_times as _moved

warnings.warn("loflex.insertion_times is deprecated and will be removed in the next release; "
              "import loflex.inspection.insertion_times", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved
