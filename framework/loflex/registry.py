"""Deprecated: the former path of :mod:`loflex.extension.registry`, kept for one release.

``import loflex.registry`` warns once and gives the module :mod:`loflex.extension.registry`
itself: the same objects, and monkeypatching either path patches both. Import the new
path instead.
"""

import sys
import warnings

from loflex.extension import registry as _moved

warnings.warn("loflex.registry is deprecated and will be removed in the next release; "
              "import loflex.extension.registry", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved
