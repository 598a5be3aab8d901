"""The forward (noising) process: clean ``x_1`` and event times -> compacted noisy ``x_t``.

At time t token j is dropped if t < T_in[j], masked if T_in[j] <= t < T_um[j] and clean
otherwise (ties: t == T_in is masked, t == T_um is clean). Dropped tokens are removed and
the survivors pushed left in order; slot i of ``x_t`` holds z_1 position ``s_t[i]``, and
gap i is the gap to the LEFT of slot i (docs/method.md §1.3). Everything is batched: no Python
loop over rows or positions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from loflex.contracts.vocab import MASK, PAD
from loflex.diffusion.batch import Batch
from loflex.diffusion.order import EventTimes, StateLogProbs


@dataclass
class NoisyBatch:
    """A noisy batch in compacted slots (width L' = the longest row) and its bookkeeping.

    Attributes:
        x_t: (B, L') long, survivors in order, masked ones as MASK, PAD past each length.
        s_t: (B, L') long, the z_1 position of each slot (0 past the length).
        real: (B, L') bool, True on slots < len(x_t).
        target: (B, L') long, the clean token of each slot, z_1[s_t] (PAD past the length).
        gaps: (B, L') long, dropped tokens between slot i-1 and slot i (0 past the length).
        gap_rates: (B, L') float, Lambda_i = sum of the insertion hazards of the dropped
            tokens in gap i; differentiable with respect to the hazards.
        dropped: (B, L) bool on z_1 positions, False at fixed and pad positions.
        masked: (B, L) bool on z_1 positions, False at fixed and pad positions.
    """

    x_t: torch.Tensor
    s_t: torch.Tensor
    real: torch.Tensor
    target: torch.Tensor
    gaps: torch.Tensor
    gap_rates: torch.Tensor
    dropped: torch.Tensor
    masked: torch.Tensor

    @property
    def mask_slots(self) -> torch.Tensor:
        """(B, L') bool: the slots holding a MASK."""
        return self.real & (self.x_t == MASK)

    def padded(self, width: int) -> NoisyBatch:
        """Return the batch with its slot tensors right-padded to ``width`` >= L'."""
        extra = width - self.x_t.shape[1]
        assert extra >= 0, f"cannot pad {self.x_t.shape[1]} slots down to {width}"
        if extra == 0:
            return self
        return NoisyBatch(
            x_t=F.pad(self.x_t, (0, extra), value=PAD),
            s_t=F.pad(self.s_t, (0, extra)),
            real=F.pad(self.real, (0, extra), value=False),
            target=F.pad(self.target, (0, extra), value=PAD),
            gaps=F.pad(self.gaps, (0, extra)),
            gap_rates=F.pad(self.gap_rates, (0, extra)),
            dropped=self.dropped,
            masked=self.masked,
        )


def _states(batch: Batch, times: EventTimes, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the (dropped, masked) flags, (B, L) bool each, on z_1 positions.

    Fixed and pad positions get T_in = T_um = 0 whatever ``times`` holds, so they are
    never dropped or masked.

    Args:
        batch: the clean batch.
        times: (B, L) event times.
        t: (B,) times in [0, 1].
    """
    pinned = batch.fixed | ~batch.real  # (B, L)
    zero = torch.zeros((), dtype=times.t_in.dtype, device=times.t_in.device)
    t_in = torch.where(pinned, zero, times.t_in)  # (B, L)
    t_um = torch.where(pinned, zero, times.t_um)  # (B, L)
    tt = t.reshape(-1, 1).to(t_in.dtype)  # (B, 1)
    dropped = tt < t_in
    masked = (tt >= t_in) & (tt < t_um) & ~pinned
    return dropped & ~pinned, masked


def _compact(keep: torch.Tensor, width: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the z_1 position of each surviving slot and the slot mask.

    Args:
        keep: (B, L) bool, the positions that survive.
        width: L', at least the longest row (default: max(1, longest row), a host sync).

    Returns:
        s_t (B, L') long (0 past each row's length) and real (B, L') bool.
    """
    lengths = keep.sum(-1)  # (B,)
    if width is None:
        width = _trimmed_width([keep])
    order = torch.argsort(keep.to(torch.int8), dim=-1, descending=True, stable=True)
    s_t = order[:, :width]  # (B, L')
    real = torch.arange(width, device=keep.device)[None] < lengths[:, None]  # (B, L')
    return torch.where(real, s_t, torch.zeros_like(s_t)), real


def gap_sums(values: torch.Tensor, s_t: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Return, for each slot i, the sum of ``values`` over z_1 positions in (s_t[i-1], s_t[i]).

    Args:
        values: (B, L) per-position values (zero where nothing should be counted).
        s_t: (B, L') slot positions; real: (B, L') bool slot mask.

    Returns:
        (B, L') sums, 0 past each row's length; differentiable in ``values``.
    """
    csum = F.pad(torch.cumsum(values, dim=-1), (1, 0))  # (B, L+1): csum[k] = sum_{j<k}
    prev = F.pad(s_t[:, :-1], (1, 0), value=-1)  # (B, L')
    total = torch.gather(csum, 1, s_t) - torch.gather(csum, 1, prev + 1)  # (B, L')
    return torch.where(real, total, torch.zeros_like(total))


def _trimmed_width(keeps: list[torch.Tensor]) -> int:
    """Return max(1, the longest surviving row over ``keeps``): the one host sync of noising."""
    if not keeps[0].numel():
        return 1
    return max(1, int(torch.stack([k.sum(-1) for k in keeps]).max()))


def noise(batch: Batch, times: EventTimes, t: torch.Tensor, hazard_in: torch.Tensor) -> NoisyBatch:
    """Build the noisy batch x_t of ``batch`` at times ``t`` from explicit event times.

    Args:
        batch: clean batch, x_1 (B, L).
        times: event times T_in, T_um (B, L) on z_1 positions.
        t: (B,) diffusion times.
        hazard_in: (B, L) insertion hazards lambda_in^j(t) of the target process; gap i's
            target rate is Lambda_i = sum over dropped j in gap i of hazard_in[j].

    Returns:
        The compacted :class:`NoisyBatch`, trimmed to its longest row.
    """
    return noise_all(batch, [times], t, hazard_in)[0]


def noise_all(batch: Batch, draws: list[EventTimes], t: torch.Tensor,
              hazard_in: torch.Tensor) -> list[NoisyBatch]:
    """Noise ``batch`` once per event-time draw, all trimmed to one common width.

    The width is the longest surviving row over every draw, found with one host sync,
    so the draws stack into one generator batch without padding.
    """
    states = [_states(batch, times, t) for times in draws]
    width = _trimmed_width([batch.real & ~dropped for dropped, _ in states])
    return [_noisy(batch, dropped, masked, hazard_in, width) for dropped, masked in states]


def _noisy(batch: Batch, dropped: torch.Tensor, masked: torch.Tensor, hazard_in: torch.Tensor,
           width: int) -> NoisyBatch:
    s_t, real = _compact(batch.real & ~dropped, width)
    x = torch.where(masked, torch.full_like(batch.x_1, MASK), batch.x_1)  # (B, L)
    pad = torch.full_like(s_t, PAD)
    x_t = torch.where(real, torch.gather(x, 1, s_t), pad)  # (B, L')
    target = torch.where(real, torch.gather(batch.x_1, 1, s_t), pad)  # (B, L')
    prev = F.pad(s_t[:, :-1], (1, 0), value=-1)  # (B, L')
    gaps = torch.where(real, (s_t - prev - 1).clamp(min=0), torch.zeros_like(s_t))
    counted = torch.where(dropped, hazard_in, torch.zeros_like(hazard_in))  # (B, L)
    return NoisyBatch(
        x_t=x_t,
        s_t=s_t,
        real=real,
        target=target,
        gaps=gaps,
        gap_rates=gap_sums(counted, s_t, real),
        dropped=dropped,
        masked=masked,
    )


def state_log_prob(log_probs: StateLogProbs, noisy: NoisyBatch, free: torch.Tensor) -> torch.Tensor:
    """Return log p_t(z_t | z_1) = sum over ``free`` positions of log P(state of j), (B,).

    Args:
        log_probs: (B, L) log-probabilities of the three states.
        noisy: the sampled states (its ``dropped`` and ``masked`` flags).
        free: (B, L) bool, the non-pad non-fixed positions.
    """
    chosen = torch.where(
        noisy.dropped, log_probs.dropped, torch.where(noisy.masked, log_probs.masked, log_probs.clean)
    )  # (B, L)
    return torch.where(free, chosen, torch.zeros_like(chosen)).sum(-1)
