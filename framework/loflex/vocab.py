"""Deprecated: the former path of :mod:`loflex.contracts.vocab`, kept for one release.

``import loflex.vocab`` warns once and gives the module :mod:`loflex.contracts.vocab`
itself: the same objects, and monkeypatching either path patches both. Import the new
path instead.
"""

import sys
import warnings

from loflex.contracts import vocab as _moved

warnings.warn("loflex.vocab is deprecated and will be removed in the next release; "
              "import loflex.contracts.vocab", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved
