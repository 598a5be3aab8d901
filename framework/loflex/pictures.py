"""Deprecated: the former path of :mod:`loflex.inspection.pictures`, kept for one release.

``import loflex.pictures`` warns once and gives the module :mod:`loflex.inspection.pictures`
itself: the same objects, and monkeypatching either path patches both. Import the new
path instead.
"""

import sys
import warnings

from loflex.inspection import pictures as _moved

warnings.warn("loflex.pictures is deprecated and will be removed in the next release; "
              "import loflex.inspection.pictures", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved
