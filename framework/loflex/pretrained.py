"""Deprecated: the former path of :mod:`loflex.extension.pretrained`, kept for one release.

``import loflex.pretrained`` warns once and gives the module :mod:`loflex.extension.pretrained`
itself: the same objects, and monkeypatching either path patches both. Import the new
path instead.
"""

import sys
import warnings

from loflex.extension import pretrained as _moved

warnings.warn("loflex.pretrained is deprecated and will be removed in the next release; "
              "import loflex.extension.pretrained", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved
