"""Former names of renamed contract members, accepted for one release with a warning."""

from __future__ import annotations

import warnings
from typing import TypeVar

T = TypeVar("T")


def renamed_argument(value: T | None, old_value: T | None, *, owner: str, name: str,
                     old_name: str) -> T | None:
    """Return the argument ``name`` of ``owner(...)``, given either by it or by ``old_name``.

    Passing ``old_name`` warns (DeprecationWarning, pointing at the caller of ``owner``).

    Raises:
        TypeError: both names were passed.
    """
    if old_value is None:
        return value
    if value is not None:
        raise TypeError(f"pass {name} only ({old_name} is its deprecated name)")
    warnings.warn(f"{owner}({old_name}=...) is deprecated; pass {name}=...",
                  DeprecationWarning, stacklevel=3)
    return old_value


def renamed_attribute(owner: str, name: str, old_name: str) -> None:
    """Warn that ``owner.old_name`` is read or set (call it from the property of the old name)."""
    warnings.warn(f"{owner}.{old_name} is deprecated and will be removed in the next release; "
                  f"use {owner}.{name}", DeprecationWarning, stacklevel=3)
