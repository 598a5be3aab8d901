"""Deprecated: the former path of :mod:`loflex.extension.plugins`, kept for one release.

``import loflex.plugins`` warns once and gives the module :mod:`loflex.extension.plugins`
itself: the same objects, and monkeypatching either path patches both. Import the new
path instead.
"""

import sys
import warnings

from loflex.extension import plugins as _moved

warnings.warn("loflex.plugins is deprecated and will be removed in the next release; "
              "import loflex.extension.plugins", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved
