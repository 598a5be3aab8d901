"""Deprecated: the former path of :mod:`loflex.extension.scaffold`, kept for one release.

``import loflex.scaffold`` warns once and gives the module :mod:`loflex.extension.scaffold`
itself: the same objects, and monkeypatching either path patches both. Import the new
path instead.
"""

import sys
import warnings

from loflex.extension import scaffold as _moved

warnings.warn("loflex.scaffold is deprecated and will be removed in the next release; "
              "import loflex.extension.scaffold", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved
