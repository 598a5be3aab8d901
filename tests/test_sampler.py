"""Tests of the tau-leaping sampler (docs/method.md §5) with deterministic stub generators."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from loflex.config import SampleConfig
from loflex.contracts import Example, Insertion, Prediction, Refill
from loflex.contracts.vocab import BOS, EOS, MASK, PAD
from loflex.errors import ConfigError, LoflexError
from loflex.sampling.sampler import (
    T_END,
    _clip_to_room,
    _insert,
    _State,
    confidence_scores,
    outside_nucleus,
    sample,
)
from torch import nn

V = 10  # ids 4..9 are ordinary tokens


class Stub(nn.Module):
    """A generator returning fixed predictions computed by plain functions of (x, t, real)."""

    def __init__(self, max_length: int = 32, logits=None, insert=None, unmask=None):
        super().__init__()
        self.max_length = max_length
        self.logits = logits or (lambda x, t, real: torch.zeros(*x.shape, V))
        self.insert = insert or (lambda x, t, real: torch.zeros(x.shape))
        self.unmask = unmask
        self.calls: list[tuple[float, int]] = []

    def forward(self, x, t, real):
        self.calls.append((float(t[0]), x.shape[1]))
        unmask = None if self.unmask is None else self.unmask(x, t, real)
        return Prediction(self.logits(x, t, real), self.insert(x, t, real).float(), unmask)


class Uniform:
    """The FlexMDM order's base hazard h(t) = 1 / (1 - t)."""

    def base_hazard(self, t):
        return 1.0 / (1.0 - t)


def constant(value: float):
    return lambda x, t, real: torch.full(x.shape, value)


def lengths(out) -> list[int]:
    return (out.x != PAD).sum(-1).tolist()


def settings(**kw) -> SampleConfig:
    return SampleConfig(**{"steps": 8, **kw})


def rng(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# -- mechanics ---------------------------------------------------------------------------

def test_insert_places_masks_left_of_each_slot():
    x = torch.tensor([[7, BOS, 5, MASK, EOS, PAD]])
    state = _State(x=x, length=torch.tensor([5]), head=torch.tensor([2]),
                   reveal=torch.tensor([[-1, -1, 3, -1, -1, -1]]), insert=torch.full((1, 6), -1))
    _insert(state, torch.tensor([[0, 0, 2, 1, 1, 0]]), k=4)
    M = MASK
    assert state.x.tolist() == [[7, BOS, M, M, 5, M, M, M, EOS]]
    assert state.length.tolist() == [9]
    assert state.reveal.tolist() == [[-1, -1, -1, -1, 3, -1, -1, -1, -1]]
    assert state.insert.tolist() == [[-1, -1, 4, 4, -1, 4, -1, 4, -1]]


def test_clip_to_room_keeps_exactly_room_and_no_gap_is_starved():
    counts = torch.tensor([[0, 3, 2, 4, 5]]).repeat(2000, 1)
    room = torch.full((2000,), 6)
    kept = _clip_to_room(counts, room, torch.full((2000,), 5), rng())
    assert kept.sum(-1).eq(6).all() and (kept <= counts).all() and (kept >= 0).all()
    # The random starting gap gives every gap with draws (the last, EOS's, included) a share.
    share = (kept > 0).float().mean(0)
    assert share[0] == 0 and (share[1:] > 0.3).all()


def test_dt_and_number_of_model_calls():
    stub = Stub()
    sample(stub, Uniform(), [Example(target=[])], settings(steps=5))
    dt = T_END / 6
    assert [t for t, _ in stub.calls] == pytest.approx([k * dt for k in range(5)])


# -- invariants --------------------------------------------------------------------------

def test_prompt_kept_and_insertion_only_after_bos():
    prompts = [Example(target=[4, 4], prompt=[7, 8, 9]), Example(target=[], prompt=[6])]
    out = sample(Stub(insert=constant(2.0)), Uniform(), prompts, settings(), rng=rng())
    assert out.x[0, :4].tolist() == [7, 8, 9, BOS] and out.x[1, :2].tolist() == [6, BOS]
    assert out.fixed[0].tolist()[:5] == [True] * 4 + [False]
    assert out.fixed[1].tolist()[:3] == [True, True, False]
    assert min(lengths(out)) > 6  # grew, left of EOS
    assert out.generated()[0].prompt == [7, 8, 9]


def test_gaps_left_of_prompt_and_bos_are_closed():
    def before_target(x, t, real):  # rate only at prompt/BOS slots
        head = (x == BOS).long().argmax(-1, keepdim=True)
        return (torch.arange(x.shape[1]) <= head).float() * 100.0

    prompts = [Example(target=[], prompt=[7, 8, 9])] * 16
    out = sample(Stub(insert=before_target), Uniform(), prompts, settings(), rng=rng())
    assert out.x.tolist() == [[7, 8, 9, BOS, EOS]] * 16


def test_unconditional_rows_grow_from_eos_alone():
    out = sample(Stub(insert=constant(1.0)), Uniform(), [Example(target=[])] * 32,
                 settings(steps=16), rng=rng())
    assert not out.fixed.any()
    assert np.mean(lengths(out)) > 3


def test_output_has_no_special_tokens_inside_and_ends_with_eos():
    out = sample(Stub(insert=constant(1.5)), Uniform(), [Example([], prompt=[5])] * 32,
                 settings(steps=12), rng=rng())
    for ids, n in zip(out.x.tolist(), lengths(out)):
        assert ids[n - 1] == EOS and all(v == PAD for v in ids[n:])
        assert all(v >= 4 for v in ids[2:n - 1])  # uniform logits would often pick 0..3


@pytest.mark.parametrize("prompt_len", [0, 3, 6])
def test_huge_rates_fill_exactly_to_the_width(prompt_len):
    prompts = [Example([], prompt=[5] * p) for p in (prompt_len, 0, 1, 9)]
    out = sample(Stub(max_length=12, insert=constant(1e9)), Uniform(), prompts, settings(),
                 rng=rng())
    assert out.x.shape[1] == 12
    assert lengths(out) == [12] * 4  # rows near the width still grow to it
    assert ((out.insert_step == 0) | (out.insert_step == -1)).all()


def test_settings_max_length_overrides_generator():
    out = sample(Stub(max_length=50, insert=constant(1e9)), Uniform(), [Example([])] * 2,
                 settings(max_length=7), rng=rng())
    assert lengths(out) == [7, 7]


def test_prompt_longer_than_width_is_a_config_error():
    with pytest.raises(ConfigError, match="max_length"):
        sample(Stub(max_length=4), Uniform(), [Example([], prompt=[5] * 4)], settings())
    with pytest.raises(ConfigError):
        sample(Stub(), Uniform(), [], settings())


# -- laws of one step --------------------------------------------------------------------

def test_insertion_count_is_poisson_rate_dt():
    """steps=2: one insertion step at t=0 where h=1, so count ~ Poisson(b dt)."""
    n, b = 4000, 1.7
    out = sample(Stub(insert=constant(b)), Uniform(), [Example([], prompt=[6])] * n,
                 settings(steps=2), rng=rng())
    counts = (out.insert_step == 0).sum(-1).double()
    lam = b * T_END / 3
    assert abs(counts.mean() - lam) < 4 * math.sqrt(lam / n)
    assert abs((counts == 0).double().mean() - math.exp(-lam)) < 0.03


@pytest.mark.parametrize("b", [1000.0, 1.0])
def test_shared_insert_multiplier_inserts_the_exact_step_probability(b):
    """An order whose tokens share b_in = b: a predicted multiplier g = b n at t = 0 inserts
    Poisson(n (1 - (1 - dt)^b)) masks in the first step, not Poisson(b n dt)."""
    from loflex import build
    from loflex.diffusion.order import OrderDynamics

    order = build(OrderDynamics, {"name": "masked", "options": {"insert_rate": b}})
    n_missing, rows, steps = 6.0, 3000, 4
    first = lambda x, t, real: torch.full(x.shape, b * n_missing if float(t[0]) == 0 else 0.0)
    out = sample(Stub(max_length=200, insert=first), order, [Example([])] * rows,
                 settings(steps=steps), rng=rng())
    counts = (out.insert_step == 0).sum(-1).double()
    dt = T_END / (steps + 1)
    lam = n_missing * (1 - (1 - dt) ** b)  # b = 1: b n dt h(0), plain tau-leaping
    assert abs(counts.mean() - lam) < 4 * math.sqrt(lam / rows)
    assert abs(counts.var() - lam) < 0.1 * lam  # Poisson


def fill_at_t0(x, t, real):
    """Insert a huge number of masks at t = 0 only."""
    return torch.full(x.shape, 1e9 if float(t[0]) == 0 else 0.0)


@pytest.mark.parametrize("b_um", [None, 2.5])
def test_unmask_probability_is_one_minus_exp_rate(b_um):
    """steps=3: masks appear at step 0; at step 1 (t=dt) each is revealed w.p. 1-exp(-b h dt)."""
    unmask = None if b_um is None else constant(b_um)
    stub = Stub(max_length=41, insert=fill_at_t0, unmask=unmask)
    out = sample(stub, Uniform(), [Example([])] * 200, settings(steps=3), rng=rng())
    dt = T_END / 4
    p = 1 - math.exp(-(b_um or 1.0) * dt / (1 - dt))
    revealed = (out.reveal_step == 1).double().sum() / (200 * 40)
    assert abs(revealed - p) < 4 * math.sqrt(p * (1 - p) / 8000)
    assert ((out.reveal_step == 2) == (out.insert_step == 0) & (out.reveal_step != 1)).all()


SHAPES = [  # top_prob, prob_diff and entropy rank these five differently
    [0.6, 0.4, 0, 0, 0, 0],
    [0.5, 0.1, 0.1, 0.1, 0.1, 0.1],
    [0.55, 0.45, 0, 0, 0, 0],
    [0.9, 0.02, 0.02, 0.02, 0.02, 0.02],
    [0.7, 0.06, 0.06, 0.06, 0.06, 0.06],
]


def slot_distributions(length: int, seed: int = 0) -> torch.Tensor:
    """(length, V) logits cycling through SHAPES (jittered, tokens permuted), specials low."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.full((length, V), -50.0)
    for j in range(length):
        p = torch.tensor(SHAPES[j % len(SHAPES)]) + 1e-6
        p = p * torch.exp(0.02 * torch.randn(6, generator=g))
        logits[j, 4:] = p.log()[torch.randperm(6, generator=g)]
    return logits


def scores_numpy(logits: torch.Tensor, mode: str) -> np.ndarray:
    p = np.exp(logits[:, 4:].double().numpy())
    p /= p.sum(-1, keepdims=True)
    top = np.sort(p, -1)[:, ::-1]
    if mode == "top_prob":
        return top[:, 0]
    if mode == "prob_diff":
        return top[:, 0] - top[:, 1]
    return (p * np.log(p)).sum(-1)


@pytest.mark.parametrize("mode", ["top_prob", "prob_diff", "entropy"])
def test_confidence_reveals_the_most_confident_masks(mode):
    width = 30
    table = slot_distributions(width)
    stub = Stub(max_length=width, insert=fill_at_t0,
                logits=lambda x, t, real: table[: x.shape[1]].expand(x.shape[0], -1, -1))
    out = sample(stub, Uniform(), [Example([])] * 100, settings(steps=3, confidence=mode),
                 rng=rng())
    score = scores_numpy(table[: width - 1], mode)  # slot j < width - 1 is a mask, EOS last
    revealed = (out.reveal_step[:, : width - 1] == 1).numpy()
    counts = revealed.sum(-1)
    for row, count in zip(revealed, counts):
        expected = np.zeros(width - 1, dtype=bool)
        expected[np.argsort(-score, kind="stable")[:count]] = True
        assert (row == expected).all()
    dt = T_END / 4
    p = 1 - math.exp(-dt / (1 - dt))
    assert abs(counts.mean() - p * (width - 1)) < 4 * math.sqrt(p * (width - 1) / 100)


def test_confidence_modes_rank_differently():
    table = slot_distributions(30)
    ranks = {m: tuple(np.argsort(-scores_numpy(table, m)))
             for m in ("top_prob", "prob_diff", "entropy")}
    assert len(set(ranks.values())) == 3  # so the test above tells the modes apart


def test_greedy_and_top_p_choose_the_top_token():
    table = slot_distributions(20, seed=3)
    best = table.argmax(-1)
    stub = Stub(max_length=20, insert=fill_at_t0,
                logits=lambda x, t, real: table[: x.shape[1]].expand(x.shape[0], -1, -1))
    for kw in ({"top_k": 1}, {"top_p": 1e-6}):
        out = sample(stub, Uniform(), [Example([])] * 8, settings(**kw), rng=rng())
        assert (out.x[:, :19] == best[:19]).all()


def test_confidence_scores_by_hand():
    probs = torch.tensor([[0.5, 0.3, 0.2, 0.0]], dtype=torch.float64)
    e = [math.exp(2 * p) for p in (0.5, 0.3, 0.2, 0.0)]  # softmax(2 K) over all four columns
    q = [v / sum(e) for v in e]
    hazard = torch.tensor([2.0], dtype=torch.float64)
    cases = {
        ("top_prob", None): 0.5,
        ("prob_diff", None): 0.2,
        ("entropy", None): 0.5 * math.log(0.5) + 0.3 * math.log(0.3) + 0.2 * math.log(0.2),
        ("top_prob", 2.0): 0.5,  # the reference ranks top_prob by max K
        ("prob_diff", 2.0): q[0] - q[1],
        ("entropy", 2.0): sum(v * math.log(v) for v in q),
    }
    for (mode, h), expected in cases.items():
        got = confidence_scores(probs, mode, None if h is None else hazard)
        assert got.item() == pytest.approx(expected, rel=1e-12), (mode, h)


HAZARD_SHAPES = [  # softmax(10 K) ranks the first two the other way round from K
    [0.35, 0.13, 0.13, 0.13, 0.13, 0.13],
    [0.6, 0.4, 0, 0, 0, 0],
    [0.5, 0.1, 0.1, 0.1, 0.1, 0.1],
    [0.9, 0.02, 0.02, 0.02, 0.02, 0.02],
]


def hazard_scores_numpy(logits: torch.Tensor, mode: str, hazard: float) -> np.ndarray:
    """Scores on softmax(hazard K) over all V columns (K = 0 on the special ids)."""
    k = np.zeros((logits.shape[0], V))
    k[:, 4:] = np.exp(logits[:, 4:].double().numpy())
    k /= k.sum(-1, keepdims=True)
    q = np.exp(hazard * k)
    q /= q.sum(-1, keepdims=True)
    top = np.sort(q, -1)[:, ::-1]
    return top[:, 0] - top[:, 1] if mode == "prob_diff" else (q * np.log(q)).sum(-1)


@pytest.mark.parametrize("mode", ["prob_diff", "entropy"])
def test_confidence_on_hazard_ranks_softmax_of_hazard_times_probabilities(mode):
    width, b_um = 25, 7.5
    g = torch.Generator().manual_seed(1)
    table = torch.full((width, V), -50.0)
    for j in range(width):
        p = torch.tensor(HAZARD_SHAPES[j % len(HAZARD_SHAPES)]) + 1e-6
        table[j, 4:] = (p * torch.exp(0.02 * torch.randn(6, generator=g))).log()
    stub = Stub(max_length=width, insert=fill_at_t0, unmask=constant(b_um),
                logits=lambda x, t, real: table[: x.shape[1]].expand(x.shape[0], -1, -1))
    chosen = settings(steps=3, confidence=mode, confidence_on="hazard")
    out = sample(stub, Uniform(), [Example([])] * 60, chosen, rng=rng())
    dt = T_END / 4
    score = hazard_scores_numpy(table[: width - 1], mode, b_um / (1 - dt))  # step 1: t = dt
    assert tuple(np.argsort(-score)) != tuple(np.argsort(-scores_numpy(table[: width - 1], mode)))
    revealed = (out.reveal_step[:, : width - 1] == 1).numpy()
    assert revealed.sum() > 0
    for row in revealed:
        expected = np.zeros(width - 1, dtype=bool)
        expected[np.argsort(-score, kind="stable")[: row.sum()]] = True
        assert (row == expected).all()


def test_confidence_on_hazard_is_refused_for_top_prob():
    with pytest.raises(ValueError, match="top_prob"):
        SampleConfig(confidence="top_prob", confidence_on="hazard")
    assert SampleConfig().top_p_rule == "inclusive"
    assert SampleConfig().confidence_on == "probabilities"


SORTED = torch.tensor([[0.5, 0.25, 0.15, 0.1],
                       [0.9, 0.05, 0.03, 0.02],
                       [0.6, 0.3, 0.1, 0.0]])


@pytest.mark.parametrize("top_p, inclusive, reference", [
    # kept counts per row of SORTED
    (0.7, [2, 1, 2], [1, 1, 1]),  # row 1: the top probability exceeds p
    (0.8, [3, 1, 2], [2, 1, 1]),
    (0.93, [4, 2, 3], [3, 1, 2]),
    (0.3, [1, 1, 1], [1, 1, 1]),  # every top probability exceeds p
])
def test_top_p_rules_keep_exactly_the_expected_tokens(top_p, inclusive, reference):
    for rule, counts in (("inclusive", inclusive), ("reference", reference)):
        kept = ~outside_nucleus(SORTED, top_p, rule)
        expected = torch.arange(4) < torch.tensor(counts)[:, None]
        assert torch.equal(kept, expected), (rule, top_p)


@pytest.mark.parametrize("rule, top_p, allowed, share_of_first", [
    ("inclusive", 0.7, {4, 5}, 0.5 / 0.75),
    ("reference", 0.7, {4}, 1.0),
    ("reference", 0.8, {4, 5}, 0.5 / 0.75),
    ("inclusive", 0.4, {4}, 1.0),  # the top probability 0.5 exceeds p
    ("reference", 0.4, {4}, 1.0),
])
def test_sampled_tokens_follow_the_top_p_rule(rule, top_p, allowed, share_of_first):
    width = 40
    probs = torch.tensor([0.5, 0.25, 0.15, 0.1, 1e-9, 1e-9])
    row = torch.full((V,), -50.0)
    row[4:] = probs.log()
    stub = Stub(max_length=width, insert=fill_at_t0,
                logits=lambda x, t, real: row.expand(*x.shape, V))
    steps = 6
    out = sample(stub, Uniform(), [Example([])] * 50,
                 settings(steps=steps, top_p=top_p, top_p_rule=rule), rng=rng())
    drawn = out.x[(out.reveal_step >= 0) & (out.reveal_step < steps - 1)]  # not the argmax step
    assert set(drawn.tolist()) == allowed
    share = (drawn == 4).double().mean().item()
    assert abs(share - share_of_first) < 4 * math.sqrt(0.25 / len(drawn)) + 1e-12


def test_constrain_logits_is_applied():
    def no_sixes(logits, x):
        return logits.masked_fill(torch.arange(V) == 6, -torch.inf)

    out = sample(Stub(insert=constant(2.0)), Uniform(), [Example([])] * 16, settings(),
                 constrain_logits=no_sixes, rng=rng())
    assert (out.x != 6).all() and (out.x == 5).any()
    with pytest.raises(LoflexError, match="constrain_logits"):
        sample(Stub(insert=constant(2.0)), Uniform(), [Example([])] * 4, settings(),
               constrain_logits=lambda logits, x: torch.full_like(logits, -torch.inf))


# -- completion after the last step ------------------------------------------------------

def missing_until(n: int, value: float = 1.0, shared_b: float = 1.0):
    """Insert ``value`` at the EOS gap while a row's target has fewer than ``n`` tokens."""
    def insert(x, t, real):
        target = (real & (x != BOS) & (x != EOS)).sum(-1, keepdim=True)
        at_eos = torch.arange(x.shape[1]) == real.sum(-1, keepdim=True) - 1
        return at_eos * (target < n) * value * shared_b
    return insert


def fives(x, t, real):
    return torch.zeros(*x.shape, V).index_fill_(-1, torch.tensor([5]), 5.0)


@pytest.mark.parametrize("rounds, expected", [(0, 0), (1, 1), (2, 2), (3, 3), (10, 3)])
def test_completion_inserts_and_fills_until_nothing_is_missing(rounds, expected):
    """One step: the last step alone inserts nothing; each round adds the missing token."""
    stub = Stub(logits=fives, insert=missing_until(3))
    out = sample(stub, Uniform(), [Example([])] * 4,
                 settings(steps=1, completion_rounds=rounds), rng=rng())
    for g in out.generated():
        assert g.tokens == [5] * expected
    assert len(stub.calls) == 1 + min(rounds, 3)  # the round that finds nothing missing stops
    assert (out.x != MASK).all()


@pytest.mark.parametrize("value, inserted", [(0.49, 0), (0.51, 1), (1.49, 1), (1.51, 2)])
def test_completion_inserts_the_rounded_remaining_count(value, inserted):
    stub = Stub(logits=fives, insert=missing_until(1, value))
    out = sample(stub, Uniform(), [Example([])] * 2,
                 settings(steps=1, completion_rounds=1), rng=rng())
    assert [len(g.tokens) for g in out.generated()] == [inserted] * 2


class Shared(Uniform):
    """An order whose tokens all share the insertion multiplier b."""

    shared_insert_multiplier = 3.0


def test_completion_divides_the_rate_by_a_shared_multiplier():
    """b_in^theta = b x missing count: a rate of 3 with b = 3 is one missing token."""
    stub = Stub(logits=fives, insert=missing_until(2, shared_b=3.0))
    out = sample(stub, Shared(), [Example([])] * 2,
                 settings(steps=1, completion_rounds=5), rng=rng())
    assert [g.tokens for g in out.generated()] == [[5, 5]] * 2


def test_completion_stops_at_the_width():
    stub = Stub(max_length=5, logits=fives, insert=missing_until(10, 4.0))
    out = sample(stub, Uniform(), [Example([])] * 2,
                 settings(steps=1, completion_rounds=8), rng=rng())
    assert lengths(out) == [5, 5] and (out.x != MASK).all()


# -- structure rounds --------------------------------------------------------------------

def needs_bracketed_seven(prompt, target):
    """A toy grammar: a target is complete once it holds ``4 x 6`` with x = 7 or 8; until
    then the group goes right after the first token (at the start of an empty target)."""
    if 4 in target:
        return []
    only_sevens_and_eights = torch.zeros(V, dtype=torch.bool)
    only_sevens_and_eights[[7, 8]] = True
    return [Insertion(min(1, len(target)), (4, MASK, 6), only_sevens_and_eights)]


def prefers(token: int):
    """Logits ranking ``token`` first, then 9, then 8, then the rest."""
    def logits(x, t, real):
        out = torch.zeros(*x.shape, V)
        out[..., token], out[..., 9], out[..., 8] = 3.0, 2.0, 1.0
        return out
    return logits


@pytest.mark.parametrize("rounds", [1, 3])
def test_structure_rounds_insert_what_the_domain_names_and_fill_it_within_the_allowed(rounds):
    """Each row gets the named tokens in its gap; the MASK slot takes the generator's most
    probable allowed token (8: 5 and 9 rank higher but are not allowed); one round is
    enough, so a second one finds nothing to do and calls no model. The prompted row (its
    prompt counts towards the stub's two tokens) shows the domain its prompt apart."""
    stub = Stub(logits=prefers(5), insert=missing_until(2))
    asked = []

    def domain(prompt, target):
        asked.append((list(prompt), list(target)))
        return needs_bracketed_seven(prompt, target)

    out = sample(stub, Uniform(), [Example([])] * 3 + [Example([], prompt=[9])],
                 settings(steps=1, completion_rounds=2, structure_rounds=rounds),
                 missing_structure=domain, rng=rng())
    assert [g.tokens for g in out.generated()] == [[5, 4, 8, 6, 5]] * 3 + [[5, 4, 8, 6]]
    assert asked[:4] == [([], [5, 5])] * 3 + [([9], [5])]
    assert len(stub.calls) == 1 + 2 + 1  # last step, completion rounds, one structure round
    assert (out.x[:3, :6] == torch.tensor([5, 4, 8, 6, 5, EOS])).all()  # no BOS unprompted
    assert (out.insert_step[:3, 1:4] == 0).all() and (out.reveal_step[:3, 1:4] == 0).all()


def test_structure_rounds_repeat_until_the_domain_finds_nothing_missing():
    """A domain that asks for one more token per round, three times, gets three rounds."""
    def three_sevens(prompt, target):
        return [Insertion(len(target), (MASK,), None)] if len(target) < 3 else []

    stub = Stub(logits=prefers(7))
    out = sample(stub, Uniform(), [Example([])] * 2, settings(steps=1, structure_rounds=8),
                 missing_structure=three_sevens, rng=rng())
    assert [g.tokens for g in out.generated()] == [[7, 7, 7]] * 2
    assert len(stub.calls) == 1 + 3


def test_structure_rounds_are_off_by_default_and_skip_rows_without_room():
    stub = Stub(logits=prefers(5), insert=missing_until(2))
    out = sample(stub, Uniform(), [Example([])] * 2, settings(steps=1, completion_rounds=2),
                 missing_structure=needs_bracketed_seven, rng=rng())
    assert [g.tokens for g in out.generated()] == [[5, 5]] * 2
    narrow = Stub(max_length=5, logits=prefers(5), insert=missing_until(2))
    out = sample(narrow, Uniform(), [Example([])] * 2,
                 settings(steps=1, completion_rounds=2, structure_rounds=2),
                 missing_structure=needs_bracketed_seven, rng=rng())
    assert [g.tokens for g in out.generated()] == [[5, 5]] * 2  # 4 + 3 slots exceed the width


def test_structure_refill_replaces_the_named_token_by_the_most_probable_allowed_one():
    """A toy grammar: a target must end in 8 or 9 (a 5 there is refilled among 8 and 9:
    the generator ranks 9 over 8) and start with a 4 (inserted before token 0). The
    insertion into gap 1 and the refill of token 1 of ``[5, 5]`` act in the right places
    whatever order the domain lists them in; the refilled token keeps when it was
    inserted and records the round's step as its reveal."""
    eights_and_nines = torch.zeros(V, dtype=torch.bool)
    eights_and_nines[[8, 9]] = True

    def domain(prompt, target):
        if target[-1] in (8, 9):
            return []
        return [Refill(len(target) - 1, eights_and_nines), Insertion(len(target) - 1, (7,)),
                Insertion(0, (4,))]

    stub = Stub(logits=prefers(5), insert=missing_until(2))
    out = sample(stub, Uniform(), [Example([])] * 2,
                 settings(steps=3, completion_rounds=2, structure_rounds=3),
                 missing_structure=domain, rng=rng())
    assert [g.tokens for g in out.generated()] == [[4, 5, 7, 9]] * 2
    assert len(stub.calls) == 3 + 2 + 1  # steps, completion rounds, one structure round
    before = sample(Stub(logits=prefers(5), insert=missing_until(2)), Uniform(),
                    [Example([])] * 2, settings(steps=3, completion_rounds=2), rng=rng())
    assert [g.tokens for g in before.generated()] == [[5, 5]] * 2
    assert (out.insert_step[:, 3] == before.insert_step[:, 1]).all()  # [4 5 7 9]: 9 was 5
    assert (out.reveal_step[:, 3] == 2).all()


def test_structure_fill_that_allows_nothing_is_an_error():
    def impossible(prompt, target):
        return [Insertion(0, (MASK,), torch.zeros(V, dtype=torch.bool))]

    with pytest.raises(LoflexError, match="missing_structure"):
        sample(Stub(), Uniform(), [Example([])], settings(steps=1, structure_rounds=1),
               missing_structure=impossible, rng=rng())


# -- whole runs --------------------------------------------------------------------------

def test_exact_stub_reproduces_its_one_sequence():
    """A stub that knows z appends masks left of EOS and names slot j's token z_j."""
    z = torch.tensor([4, 7, 5, 9, 9, 6, 8])
    prompt = [5, 6]
    head = len(prompt) + 1

    def logits(x, t, real):
        out = torch.zeros(*x.shape, V)
        slot = (torch.arange(x.shape[1]) - head).clamp(0, len(z) - 1)
        out[..., :] = -20.0
        out.scatter_(-1, z[slot].expand(x.shape)[..., None], 20.0)
        return out

    def insert(x, t, real):
        n = real.sum(-1, keepdim=True)
        remaining = (len(z) + head + 1 - n).clamp_min(0)
        at_eos = torch.arange(x.shape[1]) == n - 1
        return at_eos * 3.0 * remaining

    width = head + len(z) + 1
    for mode in ("none", "top_prob", "entropy"):
        stub = Stub(max_length=width, logits=logits, insert=insert)
        out = sample(stub, Uniform(), [Example([], prompt=prompt)] * 20,
                     settings(steps=40, confidence=mode, top_p=0.9), rng=rng())
        for g in out.generated():
            assert g.tokens == z.tolist() and g.prompt == prompt


def test_repeated_token_dataset_length_concentrates():
    """Exact posterior of a one-sequence dataset [4]*N under FlexMDM: rate = remaining h(t)."""
    n = 6

    def insert(x, t, real):
        remaining = (n + 1 - real.sum(-1, keepdim=True)).clamp_min(0)
        open_gaps = real.sum(-1, keepdim=True)
        return real * remaining / open_gaps  # any split over gaps sums to remaining

    def logits(x, t, real):
        out = torch.full((*x.shape, V), -20.0)
        out[..., 4] = 20.0
        return out

    stub = Stub(max_length=n + 1, logits=logits, insert=insert)
    out = sample(stub, Uniform(), [Example([])] * 300, settings(steps=400), rng=rng())
    tokens = [g.tokens for g in out.generated()]
    assert all(set(tok) <= {4} for tok in tokens)
    # Only tokens whose insertion time falls after the last step's time are missed.
    assert np.mean([len(tok) == n for tok in tokens]) > 0.9


def test_trajectory_is_consistent_with_final_steps():
    stub = Stub(insert=constant(1.2))
    out = sample(stub, Uniform(), [Example([], prompt=[5, 6])] * 6 + [Example([])] * 6,
                 settings(steps=10), record_trajectory=True, rng=rng())
    traj = out.trajectory
    assert len(traj.x) == len(traj.t) == 11 and traj.t[0] == 0.0
    assert torch.equal(traj.x[-1], out.x)
    for k, state in enumerate(traj.x):
        # Rebuild the state after k steps from when each final slot was inserted and revealed.
        exists = (out.insert_step < k) & (out.x != PAD)
        shown = out.reveal_step < k
        for row in range(out.x.shape[0]):
            expected = [int(v) if s else MASK
                        for v, s in zip(out.x[row][exists[row]], shown[row][exists[row]])]
            assert [v for v in state[row].tolist() if v != PAD] == expected
    generated = out.insert_step >= 0
    assert (out.reveal_step[generated] > out.insert_step[generated]).all()
    records = traj.to_records()
    assert len(records) == 12 and len(records[0]["states"]) == 11
    assert records[0]["states"][0] == {"t": 0.0, "tokens": [5, 6, BOS, EOS]}


def test_batches_are_split_and_joined():
    prompts = [Example([], prompt=[5] * (i % 3)) for i in range(7)]
    stub = Stub(insert=constant(1.0))
    stub.train()
    out = sample(stub, Uniform(), prompts, settings(batch_size=3), record_trajectory=True,
                 rng=rng())
    assert out.x.shape[0] == 7 and len(out.generated()) == 7 and len(out.prompts) == 7
    assert out.trajectory.x[-1].shape[0] == 7
    assert stub.training  # mode restored
    assert [out.fixed[i].sum().item() for i in range(7)] == [0, 2, 3, 0, 2, 3, 0]


def test_generated_aligns_tokens_and_reveal_steps():
    out = sample(Stub(insert=constant(1.5)), Uniform(), [Example([9], prompt=[5])] * 4,
                 settings(steps=12), rng=rng())
    for g, ids, steps, n in zip(out.generated(), out.x.tolist(), out.reveal_step.tolist(),
                                lengths(out)):
        assert g.tokens == ids[2:n - 1] and g.reveal_step == steps[2:n - 1]
        assert all(0 <= s <= 11 for s in g.reveal_step)
        assert g.reference is not None and g.reference.target == [9]


@pytest.mark.parametrize("confidence", ["none", "prob_diff"])
def test_tiny_transformer_smoke(confidence):
    from loflex.default_plugins.transformer import TransformerGenerator

    torch.manual_seed(0)
    opts = TransformerGenerator.Options(layers=1, width=16, heads=2, cond_dim=8)
    gen = TransformerGenerator(opts, vocab_size=V, max_length=16)
    with torch.no_grad():
        for param in gen.parameters():
            param.add_(0.2 * torch.randn_like(param))
    out = sample(gen, Uniform(), [Example([], prompt=[4, 5])] * 5 + [Example([])] * 3,
                 settings(confidence=confidence, top_p=0.8, temperature=0.7), rng=rng())
    assert out.x.shape[1] <= 16
    for g, n in zip(out.generated(), lengths(out)):
        assert all(4 <= v < V for v in g.tokens)
        assert len(g.tokens) == n - 1 - (3 if g.prompt else 0)


def test_completion_rounds_flag_reaches_the_sampler_settings():
    from loflex.cli import build_parser
    from loflex.commands.model import sampler_settings

    args = build_parser().parse_args(["sample", "MODEL", "-o", "s.jsonl", "--completion-rounds", "3"])
    assert sampler_settings(args, SampleConfig()).completion_rounds == 3
    args = build_parser().parse_args(["sample", "MODEL", "-o", "s.jsonl", "--completion-rounds", "-1"])
    with pytest.raises(ConfigError, match="completion_rounds"):
        sampler_settings(args, SampleConfig())
    args = build_parser().parse_args(["evaluate", "MODEL", "--structure-rounds", "2"])
    assert sampler_settings(args, SampleConfig()).structure_rounds == 2
    args = build_parser().parse_args(["evaluate", "MODEL", "--structure-rounds", "-2"])
    with pytest.raises(ConfigError, match="structure_rounds"):
        sampler_settings(args, SampleConfig())
