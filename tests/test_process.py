"""The forward process: compaction, gaps, gap rates and state log-probabilities."""

from __future__ import annotations

import pytest
import torch
from loflex.contracts.vocab import BOS, EOS, MASK, PAD
from loflex.diffusion import schedule as S
from loflex.diffusion.batch import Batch
from loflex.diffusion.order import EventTimes, StateLogProbs
from loflex.diffusion.process import noise, state_log_prob
from vectors import close, pad_to, section

F64 = torch.float64
SCENARIOS = ["A_paper_recipe_a1_bum1", "B_a2_learned_bum", "C_a5_learned_bum"]


def scenario(case: str):
    vec = section("scenarios", case)
    i = vec["inputs"]
    batch = Batch(i["z_1"], i["fixed"].bool())
    times = EventTimes(i["T_in"], i["T_um"])
    return vec, batch, times


@pytest.mark.parametrize("case", SCENARIOS)
def test_vectors_sample_varlen_masked_sequence(case):
    vec, batch, times = scenario(case)
    i, o = vec["inputs"], vec["outputs"]["sample_varlen_masked_sequence"]
    hazard_in = S.hazard(i["t"][:, None], i["a"], i["b_ins_phi"])
    close(hazard_in, vec["outputs"]["hazards"]["hazard_ins_phi"])
    noisy = noise(batch, times, i["t"], hazard_in)
    width = batch.x_1.shape[1]
    close(pad_to(noisy.x_t, width, PAD), o["x_t"])
    close(pad_to(noisy.s_t, width), o["s_t"])
    close(pad_to(noisy.gaps, width), o["gaps"])
    close(pad_to(noisy.real, width, False), o["gaps_mask"])
    close(pad_to(noisy.gap_rates, width), o["gap_sums"])
    close(noisy.dropped, o["deleted"])
    close(noisy.masked, o["masked"])
    assert noisy.x_t.shape[1] == int(o["gaps_mask"].sum(-1).max())


@pytest.mark.parametrize("case", SCENARIOS)
def test_vectors_gap_rate_gradient(case):
    """d sum(gap_rates) / d hazard_in is 1 exactly at the dropped non-fixed positions."""
    vec, batch, times = scenario(case)
    i, o = vec["inputs"], vec["outputs"]["sample_varlen_masked_sequence"]
    hazard_in = S.hazard(i["t"][:, None], i["a"], i["b_ins_phi"]).requires_grad_()
    noisy = noise(batch, times, i["t"], hazard_in)
    (grad,) = torch.autograd.grad(noisy.gap_rates.sum(), hazard_in)
    close(grad, o["deleted"].to(F64))


@pytest.mark.parametrize("case", SCENARIOS)
def test_vectors_log_prob_phi(case):
    vec, batch, times = scenario(case)
    i, o = vec["inputs"], vec["outputs"]["compute_log_prob_phi"]
    close(batch.free, o["phi_state_mask"])
    a, t = i["a"], i["t"][:, None]
    b_in = i["b_ins_phi"].clone().requires_grad_()
    b_um = i["b_unmask_phi"].clone().requires_grad_()
    log_probs = StateLogProbs(
        dropped=S.log_prob_dropped(t, a, b_in),
        masked=S.log_prob_masked(t, a, b_in, b_um),
        clean=S.log_prob_clean(t, a, b_in, b_um),
    )
    close(log_probs.dropped, o["log_p_dropped"])
    close(log_probs.masked, o["log_p_masked"])
    close(log_probs.clean, o["log_p_unmasked"])
    hazard_in = S.hazard(t, a, i["b_ins_phi"])
    noisy = noise(batch, times, i["t"], hazard_in)
    value = state_log_prob(log_probs, noisy, batch.free)
    close(value, o["log_prob_phi"])
    g_in, g_um = torch.autograd.grad(value.sum(), (b_in, b_um))
    close(g_in, o["grad_b_ins_phi"])
    close(g_um, o["grad_b_unmask_phi"])


def random_batch(gen: torch.Generator, rows: int = 7, width: int = 15):
    """A batch with prompts (some), BOS, EOS and padding, plus event times and hazards."""
    x_1 = torch.full((rows, width), PAD)
    fixed = torch.zeros((rows, width), dtype=torch.bool)
    for r in range(rows):
        n_prompt = int(torch.randint(0, 4, (1,), generator=gen))
        n_target = int(torch.randint(0, width - n_prompt - 1, (1,), generator=gen))
        ids = torch.randint(4, 12, (n_prompt + n_target,), generator=gen).tolist()
        head = ids[:n_prompt] + ([BOS] if n_prompt else [])
        row = head + ids[n_prompt:] + [EOS]
        row = row[:width]
        x_1[r, : len(row)] = torch.tensor(row)
        fixed[r, : len(head)] = True
        fixed[r, len(row) - 1] = True
    t_in = torch.rand((rows, width), generator=gen, dtype=F64)
    t_um = t_in + torch.rand((rows, width), generator=gen, dtype=F64) * (1 - t_in)
    t = torch.rand(rows, generator=gen, dtype=F64)
    # exact ties with t on a few positions
    t_in[0, 1], t_um[1, 0] = t[0], t[1]
    hazard = torch.rand((rows, width), generator=gen, dtype=F64) * 3
    return Batch(x_1, fixed), EventTimes(t_in, t_um), t, hazard


def slow_noise(batch: Batch, times: EventTimes, t: torch.Tensor, hazard: torch.Tensor):
    """Row by row, position by position, straight from the definitions."""
    rows = []
    for r in range(batch.x_1.shape[0]):
        slots, gaps, rates, pending, pending_rate = [], [], [], 0, 0.0
        for j in range(batch.x_1.shape[1]):
            tok = int(batch.x_1[r, j])
            if tok == PAD:
                continue
            pinned = bool(batch.fixed[r, j])
            t_in = 0.0 if pinned else float(times.t_in[r, j])
            t_um = 0.0 if pinned else float(times.t_um[r, j])
            tr = float(t[r])
            if tr < t_in:
                pending += 1
                pending_rate += float(hazard[r, j])
                continue
            slots.append((MASK if tr < t_um else tok, j, tok))
            gaps.append(pending)
            rates.append(pending_rate)
            pending, pending_rate = 0, 0.0
        rows.append((slots, gaps, rates))
    return rows


@pytest.mark.parametrize("seed", range(5))
def test_noise_matches_slow_reference(seed):
    gen = torch.Generator().manual_seed(seed)
    batch, times, t, hazard = random_batch(gen)
    noisy = noise(batch, times, t, hazard)
    expected = slow_noise(batch, times, t, hazard)
    width = max(len(slots) for slots, _, _ in expected)
    assert noisy.x_t.shape == (batch.x_1.shape[0], max(width, 1))
    for r, (slots, gaps, rates) in enumerate(expected):
        n = len(slots)
        assert noisy.real[r].tolist() == [k < n for k in range(noisy.x_t.shape[1])]
        assert noisy.x_t[r, :n].tolist() == [s[0] for s in slots]
        assert noisy.s_t[r, :n].tolist() == [s[1] for s in slots]
        assert noisy.target[r, :n].tolist() == [s[2] for s in slots]
        assert noisy.gaps[r, :n].tolist() == gaps
        torch.testing.assert_close(noisy.gap_rates[r, :n], torch.tensor(rates, dtype=F64))
        assert bool((noisy.x_t[r, n:] == PAD).all()) and bool((noisy.s_t[r, n:] == 0).all())
        assert bool((noisy.gaps[r, n:] == 0).all())
        assert bool((noisy.gap_rates[r, n:] == 0).all())
    # every non-fixed dropped token sits in exactly one gap
    assert torch.equal(noisy.gaps.sum(-1), noisy.dropped.sum(-1))


def test_fixed_and_pad_positions_ignore_their_times():
    gen = torch.Generator().manual_seed(9)
    batch, times, t, hazard = random_batch(gen)
    pinned = batch.fixed | ~batch.real
    late = EventTimes(torch.where(pinned, 2.0, times.t_in), torch.where(pinned, 3.0, times.t_um))
    a, b = noise(batch, times, t, hazard), noise(batch, late, t, hazard)
    assert torch.equal(a.x_t, b.x_t) and torch.equal(a.s_t, b.s_t)
    assert not bool((a.dropped | a.masked)[pinned].any())


def test_tie_rules():
    batch = Batch(torch.tensor([[5, 6, 7, EOS]]), torch.tensor([[False, False, False, True]]))
    t = torch.tensor([0.5], dtype=F64)
    times = EventTimes(
        torch.tensor([[0.5, 0.1, 0.6, 0.0]], dtype=F64),
        torch.tensor([[0.9, 0.5, 0.8, 0.0]], dtype=F64),
    )
    noisy = noise(batch, times, t, torch.ones(1, 4, dtype=F64))
    assert noisy.x_t.tolist() == [[MASK, 6, EOS]]  # T_in == t: masked; T_um == t: clean
    assert noisy.gaps.tolist() == [[0, 0, 1]]
    assert noisy.gap_rates.tolist() == [[0.0, 0.0, 1.0]]
