"""Deprecated: the former path of :mod:`loflex.training.train`, kept for one release.

``import loflex.train`` warns once and gives the module :mod:`loflex.training.train`
itself: the same objects, and monkeypatching either path patches both. Import the new
path instead.
"""

import sys
import warnings

from loflex.training import train as _moved

warnings.warn("loflex.train is deprecated and will be removed in the next release; "
              "import loflex.training.train", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved
