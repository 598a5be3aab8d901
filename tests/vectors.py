"""Load the reference test vectors (tests/data/testvectors, values from the paper's code)."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import torch

PATH = Path(__file__).parent / "data" / "testvectors" / "loflexmdm_reference.json"
RTOL, ATOL = 1e-9, 1e-12
DTYPES = {"float64": torch.float64, "int64": torch.long, "bool": torch.bool}


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and "dtype" in value and "shape" in value:
        out = torch.tensor(value["data"], dtype=DTYPES[value["dtype"]])
        return out.reshape(value["shape"])
    if isinstance(value, dict):
        return {k: _decode(v) for k, v in value.items()}
    return value


@functools.cache
def _raw() -> dict:
    return json.loads(PATH.read_text())


def section(*keys: str) -> dict:
    """Return one section (or case) of the vectors with every tensor decoded."""
    node = _raw()
    for key in keys:
        node = node[key]
    return _decode(node)


def close(actual: torch.Tensor, expected: torch.Tensor, rtol: float = RTOL,
          atol: float = ATOL) -> None:
    """Assert equality at the vectors' tolerance (exact for integer and bool tensors)."""
    actual = actual.detach()
    if expected.dtype in (torch.long, torch.bool):
        assert torch.equal(actual.to(expected.dtype), expected), f"{actual}\n!=\n{expected}"
        return
    torch.testing.assert_close(actual.to(torch.float64), expected, rtol=rtol, atol=atol)


def pad_to(x: torch.Tensor, width: int, value: float = 0) -> torch.Tensor:
    """Right-pad (or cut) the slot axis of a (B, L) or (B, L, V) tensor to ``width``."""
    extra = width - x.shape[1]
    if extra <= 0:
        return x[:, :width]
    shape = list(x.shape)
    shape[1] = extra
    return torch.cat([x, torch.full(shape, value, dtype=x.dtype)], dim=1)
