"""Deprecated: the former path of :mod:`loflex.training.rundir`, kept for one release.

``import loflex.rundir`` warns once and gives the module :mod:`loflex.training.rundir`
itself: the same objects, and monkeypatching either path patches both. Import the new
path instead.
"""

import sys
import warnings

from loflex.training import rundir as _moved

warnings.warn("loflex.rundir is deprecated and will be removed in the next release; "
              "import loflex.training.rundir", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved
