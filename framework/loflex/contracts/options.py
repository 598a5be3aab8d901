"""Component options: the pydantic base every component's ``Options`` model extends."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Options(BaseModel):
    """Base of every component's options: unknown keys and non-finite floats are errors.

    Every field needs a ``description`` (checked when the component is registered): it is
    what ``loflex components --options`` shows.

    Example::

        class MyOrder(loflex.KumaraswamyOrder):
            name = "my-order"

            class Options(loflex.Options):
                sharpness: float = Field(4.0, gt=0, description="How strongly ...")
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class ComponentSpec(BaseModel):
    """Which registered component to build, and its options.

    Example::

        ComponentSpec(name="kumaraswamy", options={"backbone": "shared"})
    """

    model_config = ConfigDict(extra="forbid")
    name: str = Field(description="Registered component name, e.g. 'kumaraswamy'.")
    options: dict[str, Any] = Field(default_factory=dict, description="The component's options.")


def undocumented_options(model: type[BaseModel]) -> list[str]:
    """Return the names of the fields of ``model`` that have no (non-blank) description."""
    return [name for name, field in model.model_fields.items()
            if not (field.description or "").strip()]


def expand_home(path: str | os.PathLike) -> Path:
    """``path`` with a leading ``~`` or ``~user`` expanded as the shell does.

    An unknown user's ``~name`` stays literal (``Path.expanduser`` raises there), so a
    path option naming it gets the usual missing-file error instead of a crash.
    """
    return Path(os.path.expanduser(path))
