"""Deprecated: the former path of :mod:`loflex.extension.assemble`, kept for one release.

``import loflex.assemble`` warns once and gives the module :mod:`loflex.extension.assemble`
itself: the same objects, and monkeypatching either path patches both. Import the new
path instead.
"""

import sys
import warnings

from loflex.extension import assemble as _moved

warnings.warn("loflex.assemble is deprecated and will be removed in the next release; "
              "import loflex.extension.assemble", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved
