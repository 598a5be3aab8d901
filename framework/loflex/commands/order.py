"""``loflex order``: the learned insertion time of every token of one sequence."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from loflex.errors import ConfigError


def add_commands(sub) -> None:
    p = sub.add_parser("order", help="show when a model's order inserts each token of a sequence")
    p.add_argument("model", type=Path, help="run directory or checkpoint directory")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--input", help="the target sequence, as text")
    which.add_argument("--example", type=int, metavar="N",
                       help="use example N of the domain's data instead of --input")
    p.add_argument("--prompt", help="the prompt the target belongs to, as text (with --input)")
    p.add_argument("--split", default="test", choices=("train", "valid", "test"),
                   help="where --example comes from")
    p.add_argument("--grid", type=int, default=64, help="times t the order is evaluated at")
    p.add_argument("--compare", default="",
                   help="comma-separated orders to show next to the model's: registered order "
                   "names (built with default options) or other run/checkpoint directories")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--picture", type=Path, help="draw the sequence coloured by insertion time")
    p.add_argument("--device", default="cpu", help="where to run: cpu, cuda, cuda:N or mps (default cpu)")
    p.add_argument("--no-ema", action="store_true", help="use the raw weights, not the EMA")
    p.add_argument("--force", action="store_true", help="overwrite an existing picture")
    p.set_defaults(handler=cmd_order)


def cmd_order(args) -> int:
    from loflex.commands.model import check_device
    from loflex.inspection.insertion_times import insertion_times
    from loflex.sampling.inference import load_model
    from loflex.sampling.samples_io import refuse_overwrite

    if args.grid < 2:
        raise ConfigError("--grid must be at least 2")
    check_device(args.device)
    if args.picture is not None:
        refuse_overwrite(args.picture, args.force)
    loaded = load_model(args.model, use_ema=not args.no_ema, device=args.device)
    model = loaded.model
    example = _example(model.domain, args)
    orders = {loaded.run.order.name: model.order, **_others(args, model)}
    times = {name: insertion_times(order, example, grid=args.grid) for name, order in orders.items()}
    pieces = model.domain.vocab.decode(example.target, skip_special=False)
    if args.json:
        print(json.dumps({"tokens": pieces, "ids": list(example.target),
                          **{name: {"median": t.median, "mean": t.mean}
                             for name, t in times.items()}}, indent=2))
    else:
        print(_table(pieces, times))
    if args.picture is not None:
        _picture(model.domain, example, times, args.picture)
        print(f"wrote {args.picture}")
    return 0


def _example(domain, args):
    from loflex.contracts import Example

    if args.example is not None:
        data = domain.examples(args.split)
        if not 0 <= args.example < len(data):
            raise ConfigError(f"--example {args.example} is out of range: the {args.split} split "
                              f"has {len(data)} examples")
        return data[args.example]
    target = domain.encode(args.input)
    if args.prompt is None:
        return Example(target=target)
    return dataclasses.replace(domain.parse_prompt(args.prompt), target=target)


def _others(args, model) -> dict:
    """Build the ``--compare`` orders: registry names or other saved models."""
    from loflex.diffusion.order import OrderDynamics
    from loflex.extension import registry
    from loflex.sampling.inference import load_model

    out = {}
    for name in [n.strip() for n in args.compare.split(",") if n.strip()]:
        if Path(name).exists():
            out[name] = load_model(name, use_ema=not args.no_ema, device=args.device).model.order
            continue
        order = registry.build(OrderDynamics, {"name": name}, generator=model.generator,
                               vocab_size=len(model.domain.vocab),
                               max_length=model.generator.max_length)
        if order.learned:
            raise ConfigError(f"--compare '{name}' is a learned order with untrained weights; "
                              "compare with fixed orders or pass a trained run directory")
        out[name] = order.to(args.device)
    return out


def _table(pieces: list[str], times: dict) -> str:
    names = list(times)
    header = f"{'pos':>4}  {'token':<12}" + "".join(f"  {n[:18] + ' median':>25}" for n in names)
    header += f"  {'rank':>4}"
    first = times[names[0]]
    ranks = first.ranks()
    lines = [header]
    for j, piece in enumerate(pieces):
        cells = "".join(f"  {t.median[j]:>25.4f}" for t in times.values())
        lines.append(f"{j:>4}  {piece[:12]:<12}{cells}  {ranks[j]:>4}")
    return "\n".join(lines)


def _picture(domain, example, times: dict, path: Path) -> None:
    from loflex.inspection import pictures

    label = "median insertion time"
    if len(times) == 1:
        (name, t), = times.items()
        pictures.draw_values(domain, example.target, t.median, path, prompt=example.prompt,
                             title=f"{name}: {label}", label=label, vmin=0.0, vmax=1.0)
    else:
        pictures.side_by_side(domain, example.target, {n: t.median for n, t in times.items()},
                              path, prompt=example.prompt, label=label)
