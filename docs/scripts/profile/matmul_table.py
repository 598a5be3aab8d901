"""The matrix multiplies of a torch.profiler profile, grouped by input shapes.

Shared by profile_loflex.py and reference_profile.py (which runs inside the reference's
environment, with this folder on PYTHONPATH), so both sides are tabulated alike.
"""

from __future__ import annotations

MATMULS = ("aten::mm", "aten::addmm", "aten::bmm")


def matmul_shapes(prof, rows: int = 30) -> list[dict]:
    """The matrix multiplies of a profile grouped by input shapes, slowest first."""
    events = [e for e in prof.key_averages(group_by_input_shape=True) if e.key in MATMULS]
    events.sort(key=lambda e: -e.self_cpu_time_total)
    return [{"op": e.key, "calls": e.count, "self_ms": e.self_cpu_time_total / 1e3,
             "shapes": [list(s) for s in e.input_shapes if s]} for e in events[:rows]]
