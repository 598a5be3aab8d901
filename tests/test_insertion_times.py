"""Per-token insertion times against closed forms, including a time-dependent multiplier."""

from __future__ import annotations

import math

import pytest
import torch
from loflex import load_run
from loflex.contracts import Example
from loflex.default_plugins.orders import LeftToRightOrder, UniformOrder
from loflex.diffusion.batch import Batch
from loflex.diffusion.order import KumaraswamyOrder, TokenRates
from loflex.errors import LoflexError
from loflex.extension.assemble import assemble
from loflex.inspection.insertion_times import insertion_times

TARGET = [5, 6, 7, 8, 9]


class FixedB(KumaraswamyOrder):
    """A Kumaraswamy order with given per-token b (not depending on t) and shape a."""

    name = "fixed-b"
    learned = True

    def __init__(self, b: list[float], a: float):
        super().__init__(None)
        self.b, self.a = b, a

    def forward(self, batch: Batch, t: torch.Tensor) -> TokenRates:
        b_in = torch.ones(batch.x_1.shape)
        b_in[batch.free] = torch.tensor(self.b * len(batch))
        return TokenRates(b_in=b_in, b_um=torch.ones_like(b_in))


class LinearInT(KumaraswamyOrder):
    """a = 1 and b_in(t) = 2 t for every token: Lambda(t) = 2 (-log(1 - t) - t)."""

    name = "linear-in-t"
    learned = True
    a = 1.0

    def __init__(self):
        super().__init__(None)

    def forward(self, batch: Batch, t: torch.Tensor) -> TokenRates:
        b_in = (2 * t.double())[:, None].expand(batch.x_1.shape).clone()
        return TokenRates(b_in=b_in, b_um=torch.ones_like(b_in))


def bisect(f, lo=0.0, hi=1.0 - 1e-12) -> float:
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if f(mid) < 0 else (lo, mid)
    return (lo + hi) / 2


def test_uniform_order_inserts_every_token_at_one_half_on_average():
    times = insertion_times(UniformOrder(UniformOrder.Options()), TARGET)
    assert times.tokens == TARGET
    assert times.median == pytest.approx([0.5] * 5, abs=1e-6)
    assert times.mean == pytest.approx([0.5] * 5, abs=1e-5)
    assert times.cdf[:, 0] == pytest.approx(times.grid, abs=1e-5)  # F(t) = t


def test_left_to_right_matches_the_closed_form():
    sharpness = 3.0
    order = LeftToRightOrder(LeftToRightOrder.Options(sharpness=sharpness))
    times = insertion_times(order, Example(target=TARGET, prompt=[4, 4]))
    b = [math.exp(sharpness * (0.5 - j / 4)) for j in range(5)]
    assert times.median == pytest.approx([1 - 2 ** (-1 / v) for v in b], abs=1e-5)
    assert times.mean == pytest.approx([1 / (1 + v) for v in b], abs=1e-5)
    assert times.ranks() == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("a", [1.0, 2.0, 0.7])
def test_t_independent_multipliers_give_the_kumaraswamy_median_and_mean(a):
    b = [0.5, 1.0, 1.01, 3.0, 40.0]
    times = insertion_times(FixedB(b, a), TARGET, grid=8)
    median = [(1 - 2 ** (-1 / v)) ** (1 / a) for v in b]
    # E[T] = b B(1 + 1/a, b) for Kumaraswamy(a, b)
    mean = [v * math.exp(math.lgamma(1 + 1 / a) + math.lgamma(v) - math.lgamma(1 + 1 / a + v))
            for v in b]
    assert times.median == pytest.approx(median, abs=2e-5)
    assert times.mean == pytest.approx(mean, abs=2e-4)


def test_time_dependent_multiplier_integrates_the_hazard():
    times = insertion_times(LinearInT(), TARGET, grid=64)

    def cum(t):
        return 2 * (-math.log1p(-t) - t)

    median = bisect(lambda t: cum(t) - math.log(2))
    assert times.median == pytest.approx([median] * 5, abs=1e-3)
    # E[T] = int_0^1 (1 - t)^2 e^(2t) dt = e^2 / 4 - 5 / 4
    assert times.mean == pytest.approx([math.e ** 2 / 4 - 1.25] * 5, abs=1e-3)
    # reading F off b(t) at each t alone, 1 - (1 - t)^(2t), would be a different answer
    naive = bisect(lambda t: 1 - (1 - t) ** (2 * t) - 0.5)
    assert abs(naive - median) > 0.05


def test_learned_order_agrees_with_a_brute_force_integral(toy):
    run = load_run(None, ["domain.name=toy", "generator.options.layers=1",
                          "generator.options.width=32", "generator.options.heads=2",
                          "order.options.layers=1", "order.options.width=32",
                          "order.options.heads=2", "order.options.scalar_fn=exp",
                          "order.options.min_rate=0.2"])
    torch.manual_seed(0)
    model = assemble(run)
    with torch.no_grad():  # make b depend strongly on t
        for p in model.order.parameters():
            p.add_(0.3 * torch.randn_like(p))
    example = model.domain.examples("test")[0]
    times = insertion_times(model, example, grid=64)
    # brute force: b(t) on 4000 midpoints, Lambda(t) = sum b(s) / (1 - s) ds (a = 1)
    from loflex.diffusion.batch import collate

    t = (torch.arange(4000, dtype=torch.float64) + 0.5) / 4000
    batch = collate([example] * len(t))
    with torch.no_grad():
        b = model.order(batch, t.float()).b_in[:, batch.free[0]].double()
    b_spread = (b.max(0).values - b.min(0).values).max()
    assert b_spread > 0.1, "the test needs a multiplier that changes with t"
    cum = (b / (1 - t[:, None]) / 4000).cumsum(0)
    expected = [float(t[int((cum[:, j] >= math.log(2)).float().argmax())]) for j in range(b.shape[1])]
    assert times.median == pytest.approx(expected, abs=5e-3)


def test_empty_target_is_refused():
    with pytest.raises(LoflexError, match="at least one target token"):
        insertion_times(UniformOrder(UniformOrder.Options()), [])
