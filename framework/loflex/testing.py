"""Deprecated: the former path of :mod:`loflex.extension.testing`, kept for one release.

``import loflex.testing`` warns once and gives the module :mod:`loflex.extension.testing`
itself: the same objects, and monkeypatching either path patches both. Import the new
path instead.
"""

import sys
import warnings

from loflex.extension import testing as _moved

warnings.warn("loflex.testing is deprecated and will be removed in the next release; "
              "import loflex.extension.testing", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved
