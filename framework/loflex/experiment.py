"""Deprecated: the former path of :mod:`loflex.training.experiment`, kept for one release.

``import loflex.experiment`` warns once and gives the module :mod:`loflex.training.experiment`
itself: the same objects, and monkeypatching either path patches both. Import the new
path instead.
"""

import sys
import warnings

from loflex.training import experiment as _moved

warnings.warn("loflex.experiment is deprecated and will be removed in the next release; "
              "import loflex.training.experiment", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved
