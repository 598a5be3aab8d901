"""Deprecated: the former path of :mod:`loflex.training.optim`, kept for one release.

``import loflex.optim`` warns once and gives the module :mod:`loflex.training.optim`
itself: the same objects, and monkeypatching either path patches both. Import the new
path instead.
"""

import sys
import warnings

from loflex.training import optim as _moved

warnings.warn("loflex.optim is deprecated and will be removed in the next release; "
              "import loflex.training.optim", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved
