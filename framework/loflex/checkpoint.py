"""Deprecated: the former path of :mod:`loflex.training.checkpoint`, kept for one release.

``import loflex.checkpoint`` warns once and gives the module :mod:`loflex.training.checkpoint`
itself: the same objects, and monkeypatching either path patches both. Import the new
path instead.
"""

import sys
import warnings

from loflex.training import checkpoint as _moved

warnings.warn("loflex.checkpoint is deprecated and will be removed in the next release; "
              "import loflex.training.checkpoint", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved
