"""Deprecated: the former path of :mod:`loflex.sampling.sample_files`, kept for one release.

``import loflex.sample_files`` warns once and gives the module :mod:`loflex.sampling.sample_files`
itself: the same objects, and monkeypatching either path patches both. Import the new
path instead.
"""

import sys
import warnings

from loflex.sampling import sample_files as _moved

warnings.warn("loflex.sample_files is deprecated and will be removed in the next release; "
              "import loflex.sampling.sample_files", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved
