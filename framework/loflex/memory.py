"""Deprecated: the former path of :mod:`loflex.training.memory`, kept for one release.

``import loflex.memory`` warns once and gives the module :mod:`loflex.training.memory`
itself: the same objects, and monkeypatching either path patches both. Import the new
path instead.
"""

import sys
import warnings

from loflex.training import memory as _moved

warnings.warn("loflex.memory is deprecated and will be removed in the next release; "
              "import loflex.training.memory", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved
