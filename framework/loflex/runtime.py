"""Deprecated: the former path of :mod:`loflex.training.runtime`, kept for one release.

``import loflex.runtime`` warns once and gives the module :mod:`loflex.training.runtime`
itself: the same objects, and monkeypatching either path patches both. Import the new
path instead.
"""

import sys
import warnings

from loflex.training import runtime as _moved

warnings.warn("loflex.runtime is deprecated and will be removed in the next release; "
              "import loflex.training.runtime", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved
