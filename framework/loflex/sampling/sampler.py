"""Tau-leaping reverse process with batched insertion (docs/method.md §5).

The state of a row is ``[prompt] [BOS] slots... [EOS] [PAD...]``. At each step the
generator predicts token logits and rate multipliers; every masked slot is revealed
with probability ``1 - exp(-b_um h(t) dt)`` (its token drawn by the sampling
function), and ``n_i ~ Poisson(b_in,i h(t) dt)`` masks are inserted into the gap to
the left of every slot i that is not a prompt or BOS token (the gap left of EOS is
where appending happens). The last step fills every remaining mask by argmax; with
``completion_rounds`` it then inserts and fills what the generator still finds missing,
and with ``structure_rounds`` what the domain finds structurally missing.
Tensors are kept trimmed to the current longest row, so early steps are cheap, and a
row that no later step can change (no mask left, no room to insert) leaves the batch the
model sees.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from loflex.config import SampleConfig
from loflex.contracts import Example, Generated, Insertion, Refill
from loflex.contracts.vocab import MASK, PAD, SPECIAL_TOKENS
from loflex.diffusion.batch import layout
from loflex.errors import ConfigError, LoflexError

T_END = 1.0 - 1e-5
MAX_POISSON_RATE = 1e7  # any count near this overflows the width anyway
NUM_SPECIAL = len(SPECIAL_TOKENS)

ConstrainFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
StructureFn = Callable[[Sequence[int], Sequence[int]], list[Insertion | Refill]]


@dataclass
class Trajectory:
    """The states of a reverse process, recorded on CPU.

    Masks are only ever inserted and only ever replaced by tokens, so each state
    tells which slots exist (non-pad), which are masked (``MASK``) and which are
    revealed; consecutive states give when. (A structure round's :class:`Refill` is
    the exception: it may change a token of the final state.)

    Attributes:
        t: the time of each state: 0 for the initial state, ``k dt`` after step k;
            the last state is the final output.
        x: one (B, L_k) long tensor per state (PAD beyond each row's length).
    """

    t: list[float]
    x: list[torch.Tensor]

    def to_records(self) -> list[dict]:
        """Return one JSON-able dict per sample: ``{"states": [{"t", "tokens"}, ...]}``."""
        records: list[list[dict]] = [[] for _ in range(self.x[0].shape[0])] if self.x else []
        for t, x in zip(self.t, self.x):
            for row, tokens in enumerate(x.tolist()):
                records[row].append({"t": t, "tokens": [v for v in tokens if v != PAD]})
        return [{"states": states} for states in records]


@dataclass
class SampleOutput:
    """Samples of the reverse process.

    Attributes:
        x: (B, L) long final tokens, ``[prompt][BOS] target [EOS]`` then PAD.
        fixed: (B, L) bool, True on prompt and BOS slots.
        reveal_step: (B, L) long, the step that unmasked each slot (-1 on prompt,
            BOS, EOS and PAD).
        insert_step: (B, L) long, the step that inserted each slot (-1 for the
            initial prompt, BOS and EOS, and on PAD).
        prompts: the examples the rows were conditioned on (their targets unused).
        trajectory: every intermediate state, when recorded.
    """

    x: torch.Tensor
    fixed: torch.Tensor
    reveal_step: torch.Tensor
    insert_step: torch.Tensor
    prompts: list[Example]
    trajectory: Trajectory | None = None

    def generated(self) -> list[Generated]:
        """Return one :class:`Generated` per row: target ids between BOS and EOS."""
        out = []
        rows = zip(self.x.tolist(), self.fixed.sum(-1).tolist(), self.reveal_step.tolist(),
                   self.prompts)
        for ids, head, steps, example in rows:
            length = sum(1 for v in ids if v != PAD)
            keep = [j for j in range(head, length - 1) if ids[j] >= NUM_SPECIAL]
            out.append(Generated(
                tokens=[ids[j] for j in keep],
                prompt=list(example.prompt),
                reference=example if example.target else None,
                reveal_step=[steps[j] for j in keep],
            ))
        return out


@dataclass
class _State:
    """The batch being sampled; tensors are (B, L) with L the longest current row."""

    x: torch.Tensor
    length: torch.Tensor  # (B,) slots in use, EOS included
    head: torch.Tensor  # (B,) prompt + BOS slots (insertion is forbidden left of them)
    reveal: torch.Tensor
    insert: torch.Tensor


@torch.no_grad()
def sample(generator, order, prompts: Sequence[Example], settings: SampleConfig, *,
           constrain_logits: ConstrainFn | None = None,
           missing_structure: StructureFn | None = None, record_trajectory: bool = False,
           rng: torch.Generator | None = None, device=None) -> SampleOutput:
    """Draw one sample per prompt with tau-leaping (batches of ``settings.batch_size``).

    Args:
        generator: a :class:`loflex.Generator` (put in eval mode while sampling).
        order: the :class:`loflex.OrderDynamics`; only ``base_hazard`` h(t) is used.
        prompts: one example per row; only ``prompt`` and ``bos`` are read. An
            unconditional batch passes ``Example(target=[])`` n times.
        settings: steps, token choice (temperature, top_k, top_p), confidence and
            ``max_length`` (default ``generator.max_length``): the width no row exceeds.
        constrain_logits: optional ``f(logits (B, L, V), x (B, L)) -> logits`` of the domain.
        missing_structure: optional ``f(prompt ids, target ids) -> [Insertion | Refill]`` of the
            domain, used by ``settings.structure_rounds``.
        record_trajectory: also return every intermediate state.
        rng: random generator on ``device`` (default: torch's global one).
        device: where to sample (default: the generator's device).

    Returns:
        :class:`SampleOutput`.
    """
    if not prompts:
        raise ConfigError("sample() got no prompts; pass one Example per sample to draw")
    width = settings.max_length or generator.max_length
    if device is None:
        device = next((p.device for p in generator.parameters()), torch.device("cpu"))
    was_training = generator.training
    generator.eval()
    try:
        outputs = [
            _sample_batch(generator, order, list(prompts[i:i + settings.batch_size]), settings,
                          width, constrain_logits, missing_structure, record_trajectory, rng,
                          device)
            for i in range(0, len(prompts), settings.batch_size)
        ]
    finally:
        generator.train(was_training)
    return outputs[0] if len(outputs) == 1 else _concat(outputs)


def _sample_batch(generator, order, prompts: list[Example], settings: SampleConfig, width: int,
                  constrain: ConstrainFn | None, missing: StructureFn | None, record: bool, rng,
                  device) -> SampleOutput:
    state = _initial_state(prompts, width, device)
    dt = T_END / (settings.steps + 1)
    trajectory = Trajectory([0.0], [state.x.to("cpu", copy=True)]) if record else None
    for k in range(settings.steps):
        _advance(generator, order, state, k, dt, settings, width, constrain, rng)
        if k == settings.steps - 1 and missing is not None and settings.structure_rounds:
            t = torch.full((state.x.shape[0],), k * dt, device=state.x.device)
            _complete_structure(generator, state, k, t, settings.structure_rounds, width,
                                constrain, missing)
        if trajectory is not None:
            trajectory.t.append((k + 1) * dt)
            trajectory.x.append(state.x.to("cpu", copy=True))
    positions = torch.arange(state.x.shape[1], device=device)
    return SampleOutput(x=state.x, fixed=positions < state.head[:, None],
                        reveal_step=state.reveal, insert_step=state.insert,
                        prompts=prompts, trajectory=trajectory)


def _initial_state(prompts: list[Example], width: int, device) -> _State:
    """Build ``[prompt][BOS][EOS]`` rows (no BOS for an empty prompt or ``bos=False``)."""
    rows = [layout(Example(target=[], prompt=list(ex.prompt), bos=ex.bos))[0] for ex in prompts]
    longest = max(len(ids) for ids in rows)
    if longest > width:
        raise ConfigError(f"a prompt needs {longest} slots with BOS/EOS but the sampling width is "
                          f"{width}; raise sample.max_length or shorten the prompt")
    x = torch.full((len(rows), longest), PAD, dtype=torch.long)
    for i, ids in enumerate(rows):
        x[i, :len(ids)] = torch.tensor(ids)
    length = torch.tensor([len(ids) for ids in rows], device=device)
    never = torch.full_like(x, -1, device=device)
    return _State(x=x.to(device), length=length, head=length - 1, reveal=never,
                  insert=never.clone())


def finished_rows(state: _State, width: int) -> torch.Tensor:
    """Return (B,) bool: the rows no later step can change.

    A row without masks has nothing to reveal, and a row of ``width`` slots has no room
    to insert into, so a row that is both keeps its tokens to the end.
    """
    return (state.length >= width) & ~(state.x == MASK).any(-1)


def _advance(generator, order, state: _State, k: int, dt: float, settings: SampleConfig,
             width: int, constrain: ConstrainFn | None, rng) -> None:
    """Run step k on the rows that can still change; finished rows cost nothing.

    Rows are independent given the model, so stepping the unfinished rows as a batch of
    their own draws every row from the same law (the random streams differ from a step
    of the whole batch).
    """
    active = ~finished_rows(state, width)
    if bool(active.all()):
        _step(generator, order, state, k, dt, settings, width, constrain, rng)
        return
    rows = active.nonzero().squeeze(1)
    if rows.numel() == 0:
        return
    sub = _take_rows(state, rows)
    _step(generator, order, sub, k, dt, settings, width, constrain, rng)
    _put_rows(state, rows, sub)


def _take_rows(state: _State, rows: torch.Tensor) -> _State:
    """The state of ``rows`` (R,), trimmed to their longest row."""
    length = state.length[rows]
    keep = int(length.max())
    return _State(x=state.x[rows, :keep], length=length, head=state.head[rows],
                  reveal=state.reveal[rows, :keep], insert=state.insert[rows, :keep])


def _put_rows(state: _State, rows: torch.Tensor, sub: _State) -> None:
    """Write ``sub`` back into ``rows`` of ``state`` (a finished row keeps the full width)."""
    extra = state.x.shape[1] - sub.x.shape[1]
    state.x[rows] = F.pad(sub.x, (0, extra), value=PAD)
    state.reveal[rows] = F.pad(sub.reveal, (0, extra), value=-1)
    state.insert[rows] = F.pad(sub.insert, (0, extra), value=-1)
    state.length[rows] = sub.length


def _step(generator, order, state: _State, k: int, dt: float, settings: SampleConfig,
          width: int, constrain: ConstrainFn | None, rng) -> None:
    """Advance ``state`` by step k at time t = k dt (the last step only fills masks)."""
    t = torch.full((state.x.shape[0],), k * dt, device=state.x.device)
    pred, masked, masked_logits = _predict(generator, state, t, constrain)
    if k == settings.steps - 1:
        _reveal(state, masked, masked_logits.argmax(-1), k)
        if settings.completion_rounds:
            _complete(generator, order, state, k, t, pred.insert_multiplier, settings, width,
                      constrain, rng)
        return
    h = order.base_hazard(t).float()  # (B,)
    chosen = _unmask_events(pred.unmask_rate, h, dt, masked, rng)  # (B, L)
    if settings.confidence != "none":
        hazard = None
        if settings.confidence_on == "hazard":
            hazard = _unmask_hazard(pred.unmask_rate, h, masked)[masked]  # (N,)
        scores = torch.full(masked.shape, -torch.inf, device=masked.device)
        scores[masked] = confidence_scores(masked_logits.softmax(-1), settings.confidence, hazard)
        chosen = _top_positions(scores, chosen.sum(-1))
    tokens = _sample_tokens(masked_logits[chosen[masked]], settings, rng)
    counts = _insertion_counts(_insertion_means(pred.insert_multiplier, order, t, h, dt), state,
                               width, rng)
    _reveal(state, chosen, tokens, k)
    _insert(state, counts, k)


def _complete(generator, order, state: _State, k: int, t: torch.Tensor, rate: torch.Tensor,
              settings: SampleConfig, width: int, constrain: ConstrainFn | None, rng) -> None:
    """Insert what the generator still finds missing after the last step, and fill it.

    The exact process inserts every remaining token before t = 1; tau-leaping stops at
    the last step, so a gap the generator learned about late (e.g. a fragment revealed
    in the last steps that needs a neighbour) can stay short. Each round inserts
    round(b_in^theta / b) masks into every gap (``rate`` (B, L) at time ``t`` (B,); b is
    the order's shared multiplier, else 1, as b_in is near 1 at late times), then one
    model call fills every mask by argmax and gives the next round's rates. It stops
    when no gap is missing a token or after ``settings.completion_rounds`` rounds.
    """
    b = float(getattr(order, "shared_insert_multiplier", None) or 1.0)
    for _ in range(settings.completion_rounds):
        counts = _fit_room(torch.round(_open_rates(rate, state) / b).long(), state, width, rng)
        if not bool(counts.any()):
            return
        _insert(state, counts, k)
        pred, masked, masked_logits = _predict(generator, state, t, constrain)
        _reveal(state, masked, masked_logits.argmax(-1), k)
        rate = pred.insert_multiplier


def _complete_structure(generator, state: _State, k: int, t: torch.Tensor, rounds: int,
                        width: int, constrain: ConstrainFn | None, missing: StructureFn) -> None:
    """Edit what the domain finds structurally wrong in each finished row, and fill it.

    Each round asks ``missing`` about every row's target, writes the named insertions
    into the rows that have room for all of them (``MASK`` slots included) and masks the
    tokens named for refilling, then one model call at times ``t`` (B,) fills each
    ``MASK`` slot by argmax among the tokens its :class:`Insertion` or :class:`Refill`
    allows. It stops when no row lacks anything or after ``rounds``.
    """
    for _ in range(rounds):
        plans = [_fitting(state, row, width, missing) for row in range(state.x.shape[0])]
        if not any(plans):
            return
        fills = _write_edits(state, plans, k)  # (B, L) index into `allowed`, -1 elsewhere
        allowed = [edit.fill for plan in plans for edit in plan]
        _, masked, masked_logits = _predict(generator, state, t, constrain)
        _reveal(state, masked, _restricted_argmax(masked_logits, fills[masked], allowed), k)


def _fitting(state: _State, row: int, width: int, missing: StructureFn
             ) -> list[Insertion | Refill]:
    """The edits the domain names for ``row``'s target, right to left, or [] when its
    insertions do not fit the width."""
    head, length = int(state.head[row]), int(state.length[row])
    prompt = [v for v in state.x[row, :head].tolist() if v >= NUM_SPECIAL]
    plan = missing(prompt, state.x[row, head:length - 1].tolist())
    grown = sum(len(edit.tokens) for edit in plan if isinstance(edit, Insertion))
    if length + grown > width:
        return []
    return sorted(plan, key=_edit_place, reverse=True)


def _edit_place(edit: Insertion | Refill) -> float:
    """Where an edit acts, in target positions: a refill of token i acts after an
    insertion into gap i (which goes before token i)."""
    return edit.gap if isinstance(edit, Insertion) else edit.position + 0.5


def _write_edits(state: _State, plans: list[list[Insertion | Refill]], k: int) -> torch.Tensor:
    """Rebuild ``state`` with each row's planned edits, given right to left: insertions
    are written (recorded as inserted at step k), refilled tokens become ``MASK``.

    Returns:
        (B, L) long: for each ``MASK`` slot an edit wrote, the index of its edit in the
        plans flattened row by row; -1 on every other slot.
    """
    rows, number = [], 0
    for row, plan in enumerate(plans):
        head, length = int(state.head[row]), int(state.length[row])
        x, reveal, insert = (v[row, :length].tolist() for v in (state.x, state.reveal, state.insert))
        fill = [-1] * length
        for j, edit in enumerate(plan):  # right to left: earlier places stay put
            if isinstance(edit, Refill):
                at = head + edit.position
                x[at], reveal[at], fill[at] = MASK, -1, number + j
                continue
            at = head + edit.gap
            x[at:at] = list(edit.tokens)
            reveal[at:at] = [-1 if v == MASK else k for v in edit.tokens]
            insert[at:at] = [k] * len(edit.tokens)
            fill[at:at] = [number + j if v == MASK else -1 for v in edit.tokens]
        number += len(plan)
        rows.append((x, reveal, insert, fill))
    longest = max(len(r[0]) for r in rows)
    device = state.x.device

    def column(i: int, pad: int) -> torch.Tensor:
        return torch.tensor([r[i] + [pad] * (longest - len(r[i])) for r in rows], device=device)

    state.x, state.reveal, state.insert = column(0, PAD), column(1, -1), column(2, -1)
    state.length = torch.tensor([len(r[0]) for r in rows], device=device)
    return column(3, -1)


def _restricted_argmax(logits: torch.Tensor, fill: torch.Tensor,
                       allowed: list[torch.Tensor | None]) -> torch.Tensor:
    """Argmax of ``logits`` (N, V) where slot n may take only ``allowed[fill[n]]`` (V,) bool
    (every token when ``fill[n]`` is -1 or its set is None)."""
    keep = torch.ones_like(logits, dtype=torch.bool)
    for n, index in enumerate(fill.tolist()):
        if index >= 0 and allowed[index] is not None:
            keep[n] = allowed[index].to(logits.device)
    logits = logits.masked_fill(~keep, -torch.inf)
    if logits.numel() and not bool(torch.isfinite(logits).any(-1).all()):
        raise LoflexError("an Insertion's or Refill's fill allows no non-special token; the "
                          "domain's missing_structure must allow at least one")
    return logits.argmax(-1)


def _predict(generator, state: _State, t: torch.Tensor, constrain: ConstrainFn | None):
    """One model call at times ``t`` (B,): the prediction, the masked slots (B, L) and
    their allowed float logits (N, V)."""
    real = torch.arange(state.x.shape[1], device=state.x.device) < state.length[:, None]
    pred = generator(state.x, t, real)
    logits = pred.logits if constrain is None else constrain(pred.logits, state.x)  # (B, L, V)
    masked = state.x == MASK  # (B, L)
    return pred, masked, _allowed(logits[masked], checked=constrain is not None)


def _allowed(logits: torch.Tensor, checked: bool = True) -> torch.Tensor:
    """Return float logits (N, V) with the special columns (pad, mask, BOS, EOS) at -inf.

    The reference samples from the unrestricted softmax and can write a mask, pad or
    BOS/EOS inside a target; no masked slot ever holds a special token in training,
    so those columns carry no probability we want. ``checked`` verifies that a domain
    constraint left some token allowed (a host sync, so only done when one is given).
    """
    logits = logits.float().clone()
    logits[:, :NUM_SPECIAL] = -torch.inf
    if checked and logits.numel() and not bool(torch.isfinite(logits).any(-1).all()):
        raise LoflexError("constrain_logits forbade every token at a masked slot; the domain's "
                          "constraint must leave at least one non-special token allowed")
    return logits


def _unmask_events(unmask_rate: torch.Tensor | None, h: torch.Tensor, dt: float,
                   masked: torch.Tensor, rng) -> torch.Tensor:
    """Return (B, L) bool: masked slots with at least one unmasking event in this step.

    Per (slot, token v) the event count is Poisson(b_um h K(v) dt); their sum over v is
    Poisson(b_um h dt sum_v K(v)) = Poisson(b_um h dt) because K sums to one, so
    "at least one event" has probability 1 - exp(-b_um h dt): one uniform per slot.
    """
    rate = h[:, None] * dt  # (B, 1)
    if unmask_rate is not None:
        rate = unmask_rate.float() * rate  # (B, L)
    p = -torch.expm1(-rate)
    u = torch.rand(masked.shape, generator=rng, device=masked.device)
    return masked & (u < p)


def _top_prob(probs: torch.Tensor) -> torch.Tensor:
    return probs.max(-1).values


def _prob_diff(probs: torch.Tensor) -> torch.Tensor:
    top = probs.topk(2, dim=-1).values  # (N, 2)
    return top[:, 0] - top[:, 1]


def _neg_entropy(probs: torch.Tensor) -> torch.Tensor:
    return torch.special.xlogy(probs, probs).sum(-1)


CONFIDENCE_SCORES = {"top_prob": _top_prob, "prob_diff": _prob_diff, "entropy": _neg_entropy}


def confidence_scores(probs: torch.Tensor, mode: str,
                      hazard: torch.Tensor | None = None) -> torch.Tensor:
    """Return the confidence (N,) of each masked slot; higher is revealed first.

    Args:
        probs: (N, V) token probabilities K of the masked slots.
        mode: "top_prob" (max K), "prob_diff" (the two largest probabilities' gap) or
            "entropy" (the negative entropy).
        hazard: (N,) unmasking hazards b_um h(t); when given, prob_diff and entropy are
            computed on softmax(hazard K) over the whole vocabulary, as the reference code
            does (top_prob always ranks by max K).
    """
    if hazard is not None and mode != "top_prob":
        probs = (hazard[:, None] * probs).softmax(-1)
    return CONFIDENCE_SCORES[mode](probs)


def _unmask_hazard(unmask_rate: torch.Tensor | None, h: torch.Tensor,
                   masked: torch.Tensor) -> torch.Tensor:
    """Return (B, L) unmasking hazards b_um h(t) (b_um = 1 without an unmask head)."""
    hazard = h[:, None].expand(masked.shape)
    return hazard if unmask_rate is None else unmask_rate.float() * hazard


def _top_positions(scores: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """Return (B, L) bool selecting the ``count`` (B,) highest-scoring slots of each row."""
    order = scores.argsort(dim=-1, descending=True)  # (B, L)
    rank_kept = torch.arange(scores.shape[1], device=scores.device) < count[:, None]
    return torch.zeros_like(rank_kept).scatter(1, order, rank_kept)


def _sample_tokens(logits: torch.Tensor, settings: SampleConfig, rng) -> torch.Tensor:
    """Draw one token per row of ``logits`` (N, V): temperature, then top-k, then top-p."""
    if settings.top_k == 1 or logits.shape[0] == 0:
        return logits.argmax(-1)
    logits = logits / settings.temperature
    if settings.top_k > 1:
        kth = logits.topk(min(settings.top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, -torch.inf)
    probs = logits.softmax(-1)  # (N, V)
    if settings.top_p >= 1:
        return torch.multinomial(probs, 1, generator=rng).squeeze(-1)
    sorted_probs, index = probs.sort(-1, descending=True)
    outside = outside_nucleus(sorted_probs, settings.top_p, settings.top_p_rule)
    choice = torch.multinomial(sorted_probs.masked_fill(outside, 0.0), 1, generator=rng)
    return index.gather(-1, choice).squeeze(-1)


def outside_nucleus(sorted_probs: torch.Tensor, top_p: float, rule: str) -> torch.Tensor:
    """Return (N, V) bool: the tokens top-p removes, for probabilities sorted descending.

    ``inclusive`` keeps a token while the probability of the tokens before it is <= p (the
    token that crosses p is kept: the usual nucleus); ``reference`` keeps a token while the
    cumulative probability including it is <= p. Both always keep the most likely token.
    """
    cumulative = sorted_probs.cumsum(-1)  # (N, V)
    if rule == "inclusive":
        return cumulative - sorted_probs > top_p
    if rule == "reference":
        outside = cumulative > top_p
        outside[:, 0] = False
        return outside
    raise ConfigError(f"unknown top_p_rule '{rule}'; use 'inclusive' or 'reference'")


def _insertion_means(rate: torch.Tensor, order, t: torch.Tensor, h: torch.Tensor,
                     dt: float) -> torch.Tensor:
    """Return (B, L) float: the expected insertions of this step in the gap left of each slot.

    Tau-leaping: b_in^theta h(t) dt. An order whose tokens all share one insertion
    multiplier b (attribute ``shared_insert_multiplier``, a = 1) gets the exact step
    probability instead: b_in^theta / b estimates the gap's missing count and each missing
    token is inserted in [t, t + dt) with probability 1 - ((1 - t - dt) / (1 - t))^b. For
    b = 1 that is h(t) dt again; for large b dt it inserts the whole predicted count
    rather than b dt times it.
    """
    b = getattr(order, "shared_insert_multiplier", None)
    if b is None:
        return rate.float() * h[:, None] * dt
    log_stay = b * torch.log1p(-dt / (1.0 - t.float()))  # (B,) log P(not inserted)
    return rate.float() * (-torch.expm1(log_stay) / b)[:, None]


def _insertion_counts(lam: torch.Tensor, state: _State, width: int, rng) -> torch.Tensor:
    """Return (B, L) long: masks to insert left of each slot, ``Poisson(lam)``.

    ``lam`` (B, L) holds the expected counts of :func:`_insertion_means`.

    Gaps left of prompt and BOS slots, and past a row's length, stay closed. A row
    whose draws would overflow ``width`` keeps only as many as fit (see
    :func:`_clip_to_room`) instead of dropping them all, so it still grows to the width.
    """
    counts = torch.poisson(_open_rates(lam, state), generator=rng).long()  # (B, L)
    return _fit_room(counts, state, width, rng)


def _open_rates(lam: torch.Tensor, state: _State) -> torch.Tensor:
    """``lam`` (B, L) as finite floats in [0, MAX_POISSON_RATE], 0 on closed gaps."""
    positions = torch.arange(lam.shape[1], device=lam.device)
    open_gap = (positions >= state.head[:, None]) & (positions < state.length[:, None])
    return lam.float().nan_to_num(0.0).clamp(0.0, MAX_POISSON_RATE) * open_gap


def _fit_room(counts: torch.Tensor, state: _State, width: int, rng) -> torch.Tensor:
    """``counts`` (B, L), with each row that would overflow ``width`` clipped to fit."""
    room = width - state.length  # (B,)
    over = counts.sum(-1) > room
    if bool(over.any()):
        counts = torch.where(over[:, None], _clip_to_room(counts, room, state.length, rng), counts)
    return counts


def _clip_to_room(counts: torch.Tensor, room: torch.Tensor, length: torch.Tensor,
                  rng) -> torch.Tensor:
    """Keep exactly ``room`` (B,) of the drawn insertions of each overflowing row.

    Walk the row's gaps cyclically from a uniformly random slot and keep their counts
    until ``room`` is used up (the last gap reached keeps part of its count), so no
    gap, the append gap left of EOS included, is systematically favoured.
    """
    batch, length_max = counts.shape
    positions = torch.arange(length_max, device=counts.device)
    start = (torch.rand(batch, generator=rng, device=counts.device) * length).long()  # (B,)
    index = (positions + start[:, None]) % length[:, None]  # (B, L) walk order -> slot
    in_row = positions < length[:, None]
    walked = counts.gather(1, index) * in_row
    kept_cum = walked.cumsum(-1).clamp(max=room[:, None])
    kept = kept_cum - F.pad(kept_cum, (1, 0))[:, :-1]  # (B, L)
    return torch.zeros_like(counts).scatter_add_(1, index, kept * in_row)


def _reveal(state: _State, chosen: torch.Tensor, tokens: torch.Tensor, k: int) -> None:
    """Write ``tokens`` (N,) into the ``chosen`` (B, L) slots, recording step k."""
    state.x[chosen] = tokens
    state.reveal[chosen] = k


def _insert(state: _State, counts: torch.Tensor, k: int) -> None:
    """Insert ``counts`` (B, L) masks left of each slot: slot i moves to i + cumsum(counts)_i."""
    total = counts.sum(-1)  # (B,)
    if not bool(total.any()):
        return
    batch, length = state.x.shape
    new_length = state.length + total
    width = int(new_length.max())
    positions = torch.arange(length, device=counts.device)
    target = positions + counts.cumsum(-1)  # (B, L)
    target = target.masked_fill(positions >= state.length[:, None], width)  # pad -> spare column
    inside = torch.arange(width + 1, device=counts.device) < new_length[:, None]  # (B, W + 1)

    def spread(values: torch.Tensor, new: int, pad: int) -> torch.Tensor:
        out = torch.where(inside, new, pad)  # (B, W + 1)
        return out.scatter_(1, target, values)[:, :width]

    state.x = spread(state.x, MASK, PAD)
    state.reveal = spread(state.reveal, -1, -1)
    state.insert = spread(state.insert, k, -1)
    state.length = new_length


def _pad_cat(tensors: list[torch.Tensor], fill: int) -> torch.Tensor:
    width = max(t.shape[1] for t in tensors)
    return torch.cat([F.pad(t, (0, width - t.shape[1]), value=fill) for t in tensors])


def _concat(outputs: list[SampleOutput]) -> SampleOutput:
    """Join per-batch outputs row-wise, padding to the widest."""
    trajectory = None
    if outputs[0].trajectory is not None:
        states = zip(*(o.trajectory.x for o in outputs))
        trajectory = Trajectory(outputs[0].trajectory.t, [_pad_cat(list(s), PAD) for s in states])
    return SampleOutput(
        x=_pad_cat([o.x for o in outputs], PAD),
        fixed=_pad_cat([o.fixed.long() for o in outputs], 0).bool(),
        reveal_step=_pad_cat([o.reveal_step for o in outputs], -1),
        insert_step=_pad_cat([o.insert_step for o in outputs], -1),
        prompts=[p for o in outputs for p in o.prompts],
        trajectory=trajectory,
    )
