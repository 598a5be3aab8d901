"""Deprecated: the former path of :mod:`loflex.extension.hookspecs`, kept for one release.

``import loflex.hookspecs`` warns once and gives the module :mod:`loflex.extension.hookspecs`
itself: the same objects, and monkeypatching either path patches both. Import the new
path instead.
"""

import sys
import warnings

from loflex.extension import hookspecs as _moved

warnings.warn("loflex.hookspecs is deprecated and will be removed in the next release; "
              "import loflex.extension.hookspecs", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved
