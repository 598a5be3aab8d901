"""What the generator still finds missing in finished samples, valid against invalid.

    python docs/scripts/missing_at_end.py MODEL [--samples 200] [--steps 256] \
        [--completion-rounds 0] [--times 0.9 0.97 0.995]

Draws the samples with the model's sampler (seed 0), then runs the generator once more
on each finished sequence at each time t and reads its insertion multiplier b_in^theta,
the predicted (b_in-weighted) number of tokens missing from each gap. Prints, for the
strictly valid and the invalid samples apart, the mean of the largest gap's value, the
mean of the sum over gaps, and the share of samples with a gap above 0.5.
"""

from __future__ import annotations

import argparse

import loflex
import torch
from loflex.contracts import Example
from loflex.contracts.vocab import PAD
from loflex.sampling.sampler import sample


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("--samples", type=int, default=200)
    p.add_argument("--steps", type=int, default=256)
    p.add_argument("--completion-rounds", type=int, default=0)
    p.add_argument("--times", type=float, nargs="+", default=[0.9, 0.97, 0.995])
    args = p.parse_args()
    loaded = loflex.load(args.model)
    model = loaded.model
    settings = loaded.settings(args.samples, steps=args.steps,
                               completion_rounds=args.completion_rounds)
    settings = settings.model_copy(
        update={"max_length": settings.max_length or model.generator.max_length})
    out = sample(model.generator, model.order, [Example(target=[])] * args.samples, settings,
                 rng=torch.Generator().manual_seed(0))
    valid = torch.tensor([loaded.domain.metrics([s])["validity_strict"] > 0
                          for s in out.generated()])
    real = out.x != PAD
    print(f"{args.model}: {int(valid.sum())} of {len(valid)} strictly valid")
    with torch.no_grad():
        for t in args.times:
            rate = model.generator(out.x, torch.full((len(valid),), t), real).insert_multiplier
            rate = rate.float() * real
            largest, total = rate.max(-1).values, rate.sum(-1)
            for name, rows in (("valid", valid), ("invalid", ~valid)):
                print(f"t = {t}: {name:<7} largest gap {largest[rows].mean():.3f}, summed "
                      f"{total[rows].mean():.3f}, a gap above 0.5: "
                      f"{(largest[rows] > 0.5).float().mean():.2f}")


if __name__ == "__main__":
    main()
