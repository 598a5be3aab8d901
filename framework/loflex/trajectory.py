"""Deprecated: the former path of :mod:`loflex.inspection.trajectory`, kept for one release.

``import loflex.trajectory`` warns once and gives the module :mod:`loflex.inspection.trajectory`
itself: the same objects, and monkeypatching either path patches both. Import the new
path instead.
"""

import sys
import warnings

from loflex.inspection import trajectory as _moved

warnings.warn("loflex.trajectory is deprecated and will be removed in the next release; "
              "import loflex.inspection.trajectory", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved
