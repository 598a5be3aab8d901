"""Hazard-proportional time sampling estimates the same objective as uniform times."""

from __future__ import annotations

import math

import pytest
import torch
from loflex import schedule


@pytest.mark.parametrize("a", [1.0, 2.0])
def test_weighted_hazard_times_match_uniform_expectation(a):
    g = torch.Generator().manual_seed(0)
    eps = 1e-4

    def objective(t):  # a J(t) with the h_a(t) factor every loss term carries
        return schedule.base_hazard(t, a) * (1 + torch.sin(6 * t))

    t, w = schedule.hazard_times(200_000, a, generator=g, dtype=torch.float64)
    estimate = float((w * objective(t)).mean())
    grid = torch.linspace(eps, 1 - eps, 2_000_001, dtype=torch.float64)
    exact = float(torch.trapezoid(objective(grid), grid)) / (1 - 2 * eps)
    assert estimate == pytest.approx(exact, rel=2e-3)
    assert ((t >= eps) & (t <= 1 - eps)).all()


def test_hazard_times_are_uniform_in_the_time_change():
    g = torch.Generator().manual_seed(1)
    t, _ = schedule.hazard_times(100_000, 1.0, generator=g, dtype=torch.float64)
    tau = -torch.log1p(-t)
    hi = -math.log(1e-4)
    counts = torch.histc(tau, bins=10, min=0, max=hi)
    assert (counts - 10_000).abs().max() < 50  # stratified: nearly exact
