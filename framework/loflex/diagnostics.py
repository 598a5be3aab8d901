"""Deprecated: the former path of :mod:`loflex.inspection.diagnostics`, kept for one release.

``import loflex.diagnostics`` warns once and gives the module :mod:`loflex.inspection.diagnostics`
itself: the same objects, and monkeypatching either path patches both. Import the new
path instead.
"""

import sys
import warnings

from loflex.inspection import diagnostics as _moved

warnings.warn("loflex.diagnostics is deprecated and will be removed in the next release; "
              "import loflex.inspection.diagnostics", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved
