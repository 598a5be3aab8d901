"""Deprecated: the former path of :mod:`loflex.inspection.report`, kept for one release.

``import loflex.report`` warns once and gives the module :mod:`loflex.inspection.report`
itself: the same objects, and monkeypatching either path patches both. Import the new
path instead.
"""

import sys
import warnings

from loflex.inspection import report as _moved

warnings.warn("loflex.report is deprecated and will be removed in the next release; "
              "import loflex.inspection.report", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved
