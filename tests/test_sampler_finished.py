"""The sampler spends no model call on rows that can no longer change."""

from __future__ import annotations

import math

import torch
from loflex.config import SampleConfig
from loflex.contracts import Example, Prediction
from loflex.contracts.vocab import BOS, EOS, MASK, PAD
from loflex.sampling.sampler import T_END, sample
from torch import nn

V = 10


class Recorder(nn.Module):
    """Constant predictions; records the (rows, width) of every call."""

    def __init__(self, max_length: int, insert: float, unmask: float | None = None):
        super().__init__()
        self.max_length, self.insert, self.unmask = max_length, insert, unmask
        self.calls: list[tuple[int, int]] = []

    def forward(self, x, t, real):
        self.calls.append(tuple(x.shape))
        unmask = None if self.unmask is None else torch.full(x.shape, self.unmask)
        return Prediction(torch.zeros(*x.shape, V), torch.full(x.shape, self.insert), unmask)


class Uniform:
    def base_hazard(self, t):
        return 1.0 / (1.0 - t)


def test_rows_full_and_revealed_stop_calling_the_model():
    """Step 0 fills every row to the width, step 1 reveals every mask: steps 2..7 have
    nothing left to do, so the model is called twice, not eight times."""
    model = Recorder(max_length=6, insert=1e9, unmask=1e9)
    out = sample(model, Uniform(), [Example(target=[])] * 3, SampleConfig(steps=8),
                 rng=torch.Generator().manual_seed(0))
    assert model.calls == [(3, 1), (3, 6)]
    assert (out.x != PAD).sum(-1).tolist() == [6, 6, 6]
    assert not (out.x == MASK).any()
    assert (out.reveal_step[:, :5] == 1).all() and (out.x[:, 5] == EOS).all()


def test_a_finished_row_leaves_the_batch_and_keeps_its_tokens():
    """A prompt that fills the width with BOS and EOS is finished from the start: only the
    other row reaches the model, and the finished row comes back as it went in."""
    model = Recorder(max_length=6, insert=0.0)
    prompts = [Example(target=[], prompt=[4, 5, 6, 7]), Example(target=[])]
    out = sample(model, Uniform(), prompts, SampleConfig(steps=4),
                 rng=torch.Generator().manual_seed(0))
    assert model.calls == [(1, 1)] * 4
    assert out.x[0].tolist() == [4, 5, 6, 7, BOS, EOS]
    assert out.x[1].tolist() == [EOS, PAD, PAD, PAD, PAD, PAD]
    assert out.reveal_step[0].tolist() == [-1] * 6 and out.insert_step[0].tolist() == [-1] * 6


def test_unfinished_rows_keep_the_law_of_a_step():
    """Half the rows are finished; in the others the first step inserts Poisson(b dt)
    masks, as when every row is stepped (steps=2: one insertion step at t=0, h=1)."""
    n, b = 2000, 1.7
    model = Recorder(max_length=40, insert=b)
    full = Example(target=[], prompt=[4] * 38)  # 38 + BOS + EOS = the width
    prompts = [full, Example(target=[], prompt=[6])] * n
    out = sample(model, Uniform(), prompts, SampleConfig(steps=2, batch_size=2 * n),
                 rng=torch.Generator().manual_seed(1))
    assert [rows for rows, _ in model.calls] == [n, n]
    counts = (out.insert_step[1::2] == 0).sum(-1).double()
    lam = b * T_END / 3
    assert abs(counts.mean() - lam) < 4 * math.sqrt(lam / n)
    assert abs((counts == 0).double().mean() - math.exp(-lam)) < 0.035
    assert (out.x[0::2] == torch.tensor([4] * 38 + [BOS, EOS])).all()
