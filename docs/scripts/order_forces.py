"""Which forces act on a learned order's b_in, per token, at a checkpoint.

    python docs/scripts/order_forces.py MODEL [--batches 40] [--batch-size 64] [--seed 0]

For a learned order, the objective's gradient with respect to each token's b_in splits
into the REINFORCE term, the pathwise term (through the insertion targets) and the three
regularisers (mean, boundary, KL). This script evaluates each part at the model's
weights on training batches (nothing is updated) and reports, per order-hint value
(star graphs: an edge's distance from the junction), the mean gradient of each part.
A negative mean gradient means that part of the objective wants b_in larger there
(earlier insertion). It prints a table and, with --json, the numbers.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict

import torch
from loflex.diffusion import loss as L
from loflex.diffusion import schedule
from loflex.diffusion.batch import collate
from loflex.diffusion.order import TokenRates
from loflex.diffusion.process import noise_all, state_log_prob
from loflex.sampling.inference import load_model


def parts(model, batch, rng) -> dict[str, torch.Tensor]:
    """Return part name -> (B, L) gradient of that part of J with respect to b_in."""
    generator, order = model.generator, model.order
    t = L.sample_t(len(batch), "per-sequence", rng, batch.x_1.device)
    rates = order(batch, t)
    b_in = rates.b_in.detach().requires_grad_(True)
    leaf = TokenRates(b_in=b_in, b_um=rates.b_um.detach())
    draws = [order.sample_times(leaf, generator=rng) for _ in range(2)]
    h = order.base_hazard(t)
    hazard_in, hazard_um = order.hazards(leaf, t)
    noisy = noise_all(batch, draws, t, hazard_in)
    with torch.no_grad():
        predictions = L.predict(generator, noisy, t)
    scale = float(model.domain.max_length)
    losses = [L.generator_loss(n, p, hazard_um, h, scale, False, "per-sequence")
              for n, p in zip(noisy, predictions)]
    pathwise = 0.5 * (losses[0].total + losses[1].total)
    log_probs = order.state_log_probs(leaf, t)
    log_p = [state_log_prob(log_probs, n, batch.free) for n in noisy]
    advantage = (losses[0].total - losses[1].total).detach()
    reinforce = order.options.reinforce_weight * 0.5 * advantage * (log_p[0] - log_p[1])
    grid = schedule.regulariser_grid(rng, b_in.dtype, b_in.device)
    o = order.options
    terms = {
        "reinforce": reinforce.mean(),
        "pathwise": pathwise.mean(),
        "mean": schedule.schedule_regulariser(order.a, b_in, batch.free, grid, o.mean_weight,
                                              0.0, 0.0).mean(),
        "boundary": schedule.schedule_regulariser(order.a, b_in, batch.free, grid, 0.0,
                                                  o.boundary_weight, 0.0).mean(),
        "kl": schedule.schedule_regulariser(order.a, b_in, batch.free, grid, 0.0, 0.0,
                                            o.kl_weight).mean(),
    }
    out = {}
    for name, value in terms.items():
        (grad,) = torch.autograd.grad(value, b_in, retain_graph=True, allow_unused=True)
        out[name] = torch.zeros_like(b_in) if grad is None else grad
    out["b_in"] = b_in.detach()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("--batches", type=int, default=40)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    loaded = load_model(args.model, use_ema=False)
    model = loaded.model
    examples = model.domain.examples("train")
    rng = torch.Generator().manual_seed(args.seed)
    sums: dict[tuple[str, int], float] = defaultdict(float)
    counts: dict[int, int] = defaultdict(int)
    names = ("reinforce", "pathwise", "mean", "boundary", "kl", "b_in")
    for k in range(args.batches):
        chosen = [examples[(k * args.batch_size + i) % len(examples)]
                  for i in range(args.batch_size)]
        batch = collate(chosen)
        grads = parts(model, batch, rng)
        hint = getattr(batch, "order_hint", None)
        hint = batch.side if hint is None else hint
        if hint is None:
            raise SystemExit("this domain gives no per-token order hint")
        for value in hint[batch.free].round().long().unique().tolist():
            where = batch.free & (hint.round().long() == value)
            counts[value] += int(where.sum())
            for name in names:
                sums[(name, value)] += float(grads[name][where].sum())
    table = {value: {name: sums[(name, value)] / counts[value] for name in names}
             for value in sorted(counts)}
    if args.json:
        print(json.dumps({"tokens": counts, "mean_gradient": table}, indent=1))
        return
    print("mean dJ/db_in per token, by order hint (negative: that term wants b_in larger)")
    print(f"{'hint':>5} {'tokens':>7} " + " ".join(f"{n:>11}" for n in names))
    for value, row in table.items():
        print(f"{value:>5} {counts[value]:>7} " + " ".join(f"{row[n]:>11.2e}" for n in names))


if __name__ == "__main__":
    main()
