"""Learning diagnostics: where a model's predictions are right, binned by time t.

Each clean sequence is noised at one time t (stratified over [0, 1]) by the model's own
order, the generator predicts once, and every figure is binned by t into equal bins:

- masked-token cross-entropy ``-log K(x_1 | x_t)`` and argmax accuracy, split into
  **visible** tokens (an unmasked copy of the same token id stands elsewhere in the
  *target part* of ``x_t``: prompt, BOS and EOS excluded, since a prompt such as a star
  graph's edge list contains nearly every target token) and **other** tokens;
- the per-sequence insertion loss of the run's normalisation (``loflex.diffusion.loss``);
- per open gap (a gap that can hold tokens: not left of a prompt or BOS slot), the
  predicted multiplier ``insert_multiplier``, the number of missing tokens and the target
  multiplier ``Lambda / h(t)`` (the b_in-weighted missing count the insertion head is
  trained to predict; it equals the count when every b_in is 1), and the mean absolute
  error between prediction and target.

For the order: the spread of b_in over the target tokens at a few times, and, where
examples carry a per-token order hint (``Example.order_hint``), the mean over examples of the
Spearman correlation between each token's median insertion time and its hint.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from loflex.contracts import Example, Prediction
from loflex.contracts.vocab import EOS, MASK
from loflex.diffusion import schedule
from loflex.diffusion.batch import Batch
from loflex.diffusion.loss import Normalisation, call_with_rng, generator_loss
from loflex.diffusion.order import OrderDynamics
from loflex.diffusion.process import NoisyBatch, noise
from loflex.inspection.insertion_times import insertion_times
from loflex.inspection.report import rank_correlation

TIME_BINS = 10
SPREAD_TIMES = (0.1, 0.5, 0.9)
HINT_GRID = 16
HINT_EXAMPLES = 16  # examples whose order hint is checked during training
TOKEN_SERIES = ("ce_visible", "accuracy_visible", "ce_other", "accuracy_other")
GAP_SERIES = ("missing_predicted", "missing_true", "missing_target", "missing_error")
SERIES = (*TOKEN_SERIES, "insertion", *GAP_SERIES)


@dataclass
class SlotFigures:
    """The figures of one noisy batch before binning.

    Attributes:
        t: (B,) the time of each row.
        ce: (B, L') cross-entropy of the clean token at each slot.
        correct: (B, L') bool, the argmax over all V columns is the clean token.
        masked: (B, L') bool, slots holding a MASK.
        visible: (B, L') bool, masked slots whose token shows unmasked elsewhere in the
            target part of x_t.
        open: (B, L') bool, gaps that can hold tokens.
        missing_predicted: (B, L') the generator's insertion multiplier of each gap.
        missing_true: (B, L') the number of dropped tokens in each gap.
        missing_target: (B, L') Lambda_i / h(t), the b_in-weighted missing count.
        insertion: (B,) the per-sequence insertion loss.
    """

    t: torch.Tensor
    ce: torch.Tensor
    correct: torch.Tensor
    masked: torch.Tensor
    visible: torch.Tensor
    open: torch.Tensor
    missing_predicted: torch.Tensor
    missing_true: torch.Tensor
    missing_target: torch.Tensor
    insertion: torch.Tensor


@dataclass
class BinnedSums:
    """Sums and counts of every series per time bin, (K, bins) float64 each (K = len(SERIES))."""

    total: torch.Tensor
    count: torch.Tensor

    def __add__(self, other: BinnedSums) -> BinnedSums:
        return BinnedSums(self.total + other.total, self.count + other.count)

    def means(self, name: str) -> list[float | None]:
        """Return the per-bin mean of series ``name`` (None where a bin is empty)."""
        k = SERIES.index(name)
        return [_ratio(s, c) for s, c in zip(self.total[k].tolist(), self.count[k].tolist())]

    def overall(self, name: str) -> float | None:
        """Return the mean of series ``name`` pooled over every bin (None when empty)."""
        k = SERIES.index(name)
        return _ratio(float(self.total[k].sum()), float(self.count[k].sum()))

    def counts(self, name: str) -> list[int]:
        """Return how many values of series ``name`` fell in each bin."""
        return [int(c) for c in self.count[SERIES.index(name)].tolist()]


@dataclass
class Spread:
    """The spread of b_in over the target tokens at one time t.

    Attributes:
        t: the time; mean, std (population), min, max: over every free token.
        values: (n,) the multipliers themselves (for a histogram; not in :meth:`to_dict`).
    """

    t: float
    mean: float
    std: float
    min: float
    max: float
    values: torch.Tensor = field(repr=False)

    def to_dict(self) -> dict:
        return {"t": self.t, "mean": self.mean, "std": self.std, "min": self.min, "max": self.max}


@dataclass
class HintCorrelation:
    """Mean over examples of Spearman(median insertion time, order hint); ``examples`` used."""

    rho: float
    examples: int


@dataclass
class Diagnosis:
    """Every diagnostic figure of one model on one set of sequences.

    Attributes:
        edges: bins + 1 bin edges in t.
        sums: the binned sums (see :data:`SERIES`).
        learned: whether the order has parameters it learns.
        spread: b_in spread at each of :data:`SPREAD_TIMES` (empty when not computed).
        hint: the order-hint correlation, None without hints.
    """

    edges: list[float]
    sums: BinnedSums
    learned: bool
    spread: list[Spread]
    hint: HintCorrelation | None

    def to_dict(self) -> dict:
        """Return a JSON-ready dict: per-bin curves, pooled figures and the order's figures."""
        curves = {name: self.sums.means(name) for name in SERIES if name != "missing_error"}
        curves["count_visible"] = self.sums.counts("ce_visible")
        curves["count_other"] = self.sums.counts("ce_other")
        curves["sequences"] = self.sums.counts("insertion")
        overall = {name: self.sums.overall(name) for name in SERIES if name != "missing_error"}
        overall["missing_mae"] = self.sums.overall("missing_error")
        return {"edges": self.edges, "curves": curves, "overall": overall,
                "order": {"learned": self.learned, "b_in": [s.to_dict() for s in self.spread],
                          "hint": None if self.hint is None else asdict(self.hint)}}

    def log_fields(self, prefix: str = "diag/") -> dict:
        """Return the figures for one metrics.jsonl line: curves as lists, the rest scalars."""
        out = {f"{prefix}{name}": self.sums.means(name) for name in SERIES
               if name != "missing_error"}
        out[f"{prefix}missing_mae"] = self.sums.overall("missing_error")
        for name in TOKEN_SERIES:
            out[f"{prefix}{name}_all"] = self.sums.overall(name)
        for s in self.spread:
            for stat in ("mean", "std", "min", "max"):
                out[f"{prefix}b_in_{stat}@{s.t:g}"] = getattr(s, stat)
        if self.hint is not None:
            out[f"{prefix}hint_rho"] = self.hint.rho
        return out


def _ratio(total: float, count: float) -> float | None:
    return total / count if count > 0 else None


def time_bins(t: torch.Tensor, bins: int) -> torch.Tensor:
    """Return the bin of each time, floor(t bins) clamped to [0, bins - 1], (B,) long."""
    return (t.double() * bins).floor().long().clamp(0, bins - 1)


def slot_fixed(batch: Batch, noisy: NoisyBatch) -> torch.Tensor:
    """Return (B, L') bool: the slots holding a fixed token (prompt, BOS, EOS)."""
    return torch.gather(batch.fixed, 1, noisy.s_t) & noisy.real


def visible_twins(noisy: NoisyBatch, fixed: torch.Tensor) -> torch.Tensor:
    """Return (B, L') bool: masked slots whose clean token shows unmasked in the target part.

    Args:
        noisy: the noisy batch.
        fixed: (B, L') bool, slots of prompt, BOS and EOS tokens (never counted as shown).
    """
    shown = noisy.real & ~fixed & (noisy.x_t != MASK)  # (B, L')
    shown_ids = torch.where(shown, noisy.x_t, torch.full_like(noisy.x_t, -1))  # (B, L')
    twin = (noisy.target[:, :, None] == shown_ids[:, None, :]).any(-1)  # (B, L')
    return noisy.mask_slots & twin


def open_gaps(noisy: NoisyBatch, fixed: torch.Tensor) -> torch.Tensor:
    """Return (B, L') bool: real gaps that can hold tokens (left of a target slot or EOS)."""
    return noisy.real & (~fixed | (noisy.x_t == EOS))


def token_scores(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the cross-entropy and argmax correctness of ``target``, (B, L') each.

    Args:
        logits: (B, L', V) token logits.
        target: (B, L') clean token ids.
    """
    log_k = F.log_softmax(logits.float(), dim=-1)  # (B, L', V)
    ce = -torch.gather(log_k, 2, target[..., None]).squeeze(-1)  # (B, L')
    return ce, logits.argmax(-1) == target


def slot_figures(batch: Batch, noisy: NoisyBatch, prediction: Prediction, t: torch.Tensor,
                 base_h: torch.Tensor, insertion: torch.Tensor) -> SlotFigures:
    """Collect the per-slot figures of one noisy batch and the generator's prediction on it.

    Args:
        batch: the clean batch (B, L).
        noisy: its noisy batch (B, L').
        prediction: the generator's output on ``noisy.x_t``.
        t: (B,) the times; base_h: (B,) h(t); insertion: (B,) per-sequence insertion loss.
    """
    width = noisy.x_t.shape[1]
    fixed = slot_fixed(batch, noisy)
    ce, correct = token_scores(prediction.logits[:, :width], noisy.target)
    return SlotFigures(
        t=t, ce=ce, correct=correct, masked=noisy.mask_slots,
        visible=visible_twins(noisy, fixed), open=open_gaps(noisy, fixed),
        missing_predicted=prediction.insert_multiplier[:, :width].double(),
        missing_true=noisy.gaps.double(),
        missing_target=noisy.gap_rates.double() / base_h.double()[:, None],
        insertion=insertion,
    )


def binned_sum(values: torch.Tensor, keep: torch.Tensor, bins: torch.Tensor,
               count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the sum and count of ``values`` where ``keep``, per time bin, (count,) each.

    Args:
        values: (B, L') or (B,) numbers; keep: bool of the same shape.
        bins: (B,) the time bin of each row.
        count: the number of bins.
    """
    rows = bins.reshape(-1, *([1] * (values.dim() - 1))).expand_as(values)
    kept = torch.where(keep, values.double(), torch.zeros((), dtype=torch.float64,
                                                          device=values.device))
    total = torch.zeros(count, dtype=torch.float64, device=values.device)
    total.index_add_(0, rows.reshape(-1), kept.reshape(-1))
    number = torch.zeros(count, dtype=torch.float64, device=values.device)
    number.index_add_(0, rows.reshape(-1), keep.reshape(-1).double())
    return total.cpu(), number.cpu()


def bin_figures(figures: SlotFigures, count: int = TIME_BINS) -> BinnedSums:
    """Bin every series of one batch's figures by time, (len(SERIES), count) each."""
    bins = time_bins(figures.t, count)
    visible = figures.visible
    other = figures.masked & ~visible
    error = (figures.missing_predicted - figures.missing_target).abs()
    pairs = {
        "ce_visible": (figures.ce, visible), "accuracy_visible": (figures.correct, visible),
        "ce_other": (figures.ce, other), "accuracy_other": (figures.correct, other),
        "insertion": (figures.insertion, torch.ones_like(figures.insertion, dtype=torch.bool)),
        "missing_predicted": (figures.missing_predicted, figures.open),
        "missing_true": (figures.missing_true, figures.open),
        "missing_target": (figures.missing_target, figures.open),
        "missing_error": (error, figures.open),
    }
    sums = [binned_sum(*pairs[name], bins, count) for name in SERIES]
    return BinnedSums(torch.stack([s for s, _ in sums]), torch.stack([c for _, c in sums]))


def draw_times(n: int, rng: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """Return n stratified times on [1e-4, 1 - 1e-4] in random row order, (n,)."""
    t = schedule.loflexmdm_times(n, rng, torch.get_default_dtype(), device)
    return t[torch.randperm(n, generator=rng, device=device)]


def noisy_figures(batch: Batch, generator: nn.Module, order: OrderDynamics, t: torch.Tensor, *,
                  rng: torch.Generator | None, normalisation: Normalisation,
                  length_scale: float) -> SlotFigures:
    """Noise ``batch`` at times ``t`` (B,) with the order's event times, predict once, measure."""
    rates = order(batch, t)
    base_h = order.base_hazard(t)  # (B,)
    hazard_in, hazard_um = order.hazards(rates, t)  # (B, L) each
    noisy = noise(batch, call_with_rng(order.sample_times, rates, rng=rng), t, hazard_in)
    prediction = generator(noisy.x_t, t, noisy.real)
    learn_unmask = order.learns_unmask(order.options)
    loss = generator_loss(noisy, prediction, hazard_um, base_h, length_scale, learn_unmask,
                          normalisation)
    return slot_figures(batch, noisy, prediction, t, base_h, loss.insertion)


def b_in_spread(order: OrderDynamics, batches: Sequence[Batch], t: float) -> Spread:
    """Return the spread of b_in over every free token of ``batches`` at time ``t``."""
    values = []
    for batch in batches:
        times = torch.full((len(batch),), t, dtype=torch.get_default_dtype(),
                           device=batch.x_1.device)
        values.append(order(batch, times).b_in[batch.free].double().cpu())
    v = torch.cat(values)
    assert v.numel() > 0, "b_in spread needs at least one target token"
    return Spread(t=t, mean=float(v.mean()), std=float(v.std(unbiased=False)),
                  min=float(v.min()), max=float(v.max()), values=v)


def hint_correlation(order: OrderDynamics, examples: Sequence[Example],
                     grid: int = HINT_GRID) -> HintCorrelation | None:
    """Return the mean Spearman rho of median insertion time against ``Example.order_hint``.

    Examples without an order hint, or where rho is undefined (fewer than two
    tokens, constant hints or constant medians), are left out; None when none is left.
    """
    rhos = []
    for example in examples:
        if example.order_hint is None or len(example.target) < 2:
            continue
        medians = insertion_times(order, example, grid=grid).median
        rho = rank_correlation(medians, list(example.order_hint))
        if rho is not None and math.isfinite(rho):
            rhos.append(rho)
    if not rhos:
        return None
    return HintCorrelation(rho=sum(rhos) / len(rhos), examples=len(rhos))


@contextlib.contextmanager
def evaluating(*modules: nn.Module) -> Iterator[None]:
    """Put ``modules`` in eval mode for the block and restore each one's mode after it."""
    modes = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        yield
    finally:
        for m, mode in zip(modules, modes):
            m.train(mode)


@torch.no_grad()
def diagnose(generator: nn.Module, order: OrderDynamics, batches: Sequence[Batch], *,
             rng: torch.Generator | None, normalisation: Normalisation, length_scale: float,
             bins: int = TIME_BINS, repeats: int = 1, spread: bool = True,
             hint_examples: Sequence[Example] = ()) -> Diagnosis:
    """Measure a model on clean batches (on the generator's device).

    Args:
        generator: the generator; order: the order that noises the batches.
        batches: clean batches (each row is noised ``repeats`` times, at fresh times).
        rng: the random stream for times and event times (None: torch's global one).
        normalisation: the run's ``train.loss_normalisation``; length_scale: its L_max.
        bins: equal bins of t over [0, 1].
        repeats: noisy samples per sequence.
        spread: also measure b_in at :data:`SPREAD_TIMES`.
        hint_examples: examples whose ``order_hint`` is compared with median insertion times.
    """
    assert bins >= 1 and repeats >= 1, "diagnose needs at least one bin and one repeat"
    assert batches, "diagnose needs at least one batch"
    sums = BinnedSums(torch.zeros(len(SERIES), bins, dtype=torch.float64),
                      torch.zeros(len(SERIES), bins, dtype=torch.float64))
    with evaluating(generator, order):
        for _ in range(repeats):
            for batch in batches:
                t = draw_times(len(batch), rng, batch.x_1.device)
                figures = noisy_figures(batch, generator, order, t, rng=rng,
                                        normalisation=normalisation, length_scale=length_scale)
                sums = sums + bin_figures(figures, bins)
        spreads = [b_in_spread(order, batches, t) for t in SPREAD_TIMES] if spread else []
        hint = hint_correlation(order, hint_examples) if hint_examples else None
    edges = [k / bins for k in range(bins + 1)]
    return Diagnosis(edges=edges, sums=sums, learned=bool(order.learned), spread=spreads,
                     hint=hint)
