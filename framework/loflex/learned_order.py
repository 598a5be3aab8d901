"""Deprecated: the former name of :mod:`loflex.inspection.insertion_times`, kept for one release.

``import loflex.learned_order`` warns once and gives every name of
:mod:`loflex.inspection.insertion_times`; import that module instead.
"""

from __future__ import annotations

import warnings

from loflex.inspection import insertion_times as _insertion_times

warnings.warn("loflex.learned_order is deprecated and will be removed in the next release; "
              "import loflex.inspection.insertion_times (it works for any order, learned or not)",
              DeprecationWarning, stacklevel=2)


def __getattr__(name: str):
    """Return ``name`` of :mod:`loflex.inspection.insertion_times`."""
    return getattr(_insertion_times, name)


def __dir__() -> list[str]:
    return dir(_insertion_times)
