"""``loflex diagnose``: where a trained model is right and wrong, binned by time t."""

from __future__ import annotations

import json
from pathlib import Path

from loflex.errors import ConfigError

CURVE_COLOURS = {"visible": "#2c5d8a", "other": "#d1495b"}


def add_commands(sub) -> None:
    p = sub.add_parser("diagnose", help="learning diagnostics of a model: figures binned by t")
    p.add_argument("model", type=Path, help="run directory or checkpoint directory")
    p.add_argument("--examples", type=int, default=256, metavar="N",
                   help="sequences of the split to measure on (default 256)")
    p.add_argument("--repeats", type=int, default=4,
                   help="noisy samples per sequence, each at a fresh t (default 4)")
    p.add_argument("--split", default="valid", choices=("train", "valid", "test"),
                   help="where the sequences come from (default valid)")
    p.add_argument("--seed", type=int, default=0, help="seed of the noise (default 0)")
    p.add_argument("--batch-size", type=int, default=64, help="sequences per forward pass")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--picture", type=Path, help="draw the curves by t and a b_in histogram")
    p.add_argument("--device", default="cpu", help="where to run: cpu, cuda, cuda:N or mps (default cpu)")
    p.add_argument("--no-ema", action="store_true", help="use the raw weights, not the EMA")
    p.add_argument("--force", action="store_true", help="overwrite an existing picture")
    p.set_defaults(handler=cmd_diagnose)


def cmd_diagnose(args) -> int:
    import torch

    from loflex.diffusion.batch import collate
    from loflex.inspection.diagnostics import diagnose
    from loflex.sampling.inference import load_model
    from loflex.sampling.samples_io import refuse_overwrite

    for flag, value in (("--examples", args.examples), ("--repeats", args.repeats),
                        ("--batch-size", args.batch_size)):
        if value < 1:
            raise ConfigError(f"{flag} must be at least 1, got {value}")
    if args.picture is not None:
        refuse_overwrite(args.picture, args.force)
    loaded = load_model(args.model, use_ema=not args.no_ema, device=args.device)
    model = loaded.model
    examples = _examples(model.domain, args.split, args.examples)
    batches = [collate(examples[i:i + args.batch_size]).to(args.device)
               for i in range(0, len(examples), args.batch_size)]
    found = diagnose(model.generator, model.order, batches,
                     rng=torch.Generator(device=args.device).manual_seed(args.seed),
                     normalisation=loaded.run.train.loss_normalisation,
                     length_scale=float(model.domain.max_length), repeats=args.repeats,
                     hint_examples=examples)
    report = {"model": str(loaded.checkpoint.path), "split": args.split,
              "examples": len(examples), "repeats": args.repeats, "seed": args.seed,
              **found.to_dict()}
    report["order"] = {"name": loaded.run.order.name, **report["order"]}
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    if args.picture is not None:
        draw(found, args.picture, title=f"{loaded.run.order.name} · {args.split}")
        print(f"wrote {args.picture}")
    return 0


def _examples(domain, split: str, count: int) -> list:
    data = domain.examples(split)
    if not len(data):
        raise ConfigError(f"the {split} split has no examples; choose another with --split")
    return [data[i] for i in range(min(count, len(data)))]


def _cell(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def format_report(report: dict) -> str:
    """Render the diagnosis as a per-bin table followed by the pooled and order figures."""
    c, o = report["curves"], report["overall"]
    lines = [f"{report['examples']} {report['split']} sequences x {report['repeats']} noisy "
             f"samples; visible = an unmasked twin in the target part of x_t",
             f"{'t':>9}  {'n vis':>6} {'CE vis':>7} {'acc vis':>7}  {'n oth':>6} {'CE oth':>7} "
             f"{'acc oth':>7}  {'ins loss':>8}  {'missing pred/true/target':>24}"]
    edges = report["edges"]
    for k in range(len(edges) - 1):
        missing = "/".join(_cell(c[n][k], 2) for n in
                           ("missing_predicted", "missing_true", "missing_target"))
        lines.append(f"{edges[k]:.2f}-{edges[k + 1]:.2f}  {c['count_visible'][k]:>6} "
                     f"{_cell(c['ce_visible'][k]):>7} {_cell(c['accuracy_visible'][k]):>7}  "
                     f"{c['count_other'][k]:>6} {_cell(c['ce_other'][k]):>7} "
                     f"{_cell(c['accuracy_other'][k]):>7}  {_cell(c['insertion'][k], 4):>8}  "
                     f"{missing:>24}")
    lines.append(f"all: CE visible {_cell(o['ce_visible'])}, other {_cell(o['ce_other'])}; "
                 f"accuracy visible {_cell(o['accuracy_visible'])}, other "
                 f"{_cell(o['accuracy_other'])}; missing-token MAE {_cell(o['missing_mae'])}")
    order = report["order"]
    for s in order["b_in"]:
        lines.append(f"b_in at t={s['t']:g}: mean {s['mean']:.4f} std {s['std']:.4f} "
                     f"min {s['min']:.4f} max {s['max']:.4f}")
    if order["hint"] is not None:
        lines.append(f"Spearman(median insertion time, order hint) = {order['hint']['rho']:.3f} "
                     f"over {order['hint']['examples']} sequences")
    return "\n".join(lines)


def draw(found, path: Path, *, title: str = "") -> Path:
    """Draw CE, accuracy, insertion loss and missing counts by t, and a b_in histogram.

    Returns:
        ``path``; the image is 11 x 7 inches (six panels).
    """
    from matplotlib.figure import Figure

    from loflex.inspection import pictures

    sums = found.sums
    centres = [(a + b) / 2 for a, b in zip(found.edges[:-1], found.edges[1:])]
    fig = Figure(figsize=(11.0, 7.0), layout="constrained")
    (ce, acc, ins), (gaps, hist, by_time) = fig.subplots(2, 3)
    for kind, colour in CURVE_COLOURS.items():
        _curve(ce, centres, sums.means(f"ce_{kind}"), kind, colour)
        _curve(acc, centres, sums.means(f"accuracy_{kind}"), kind, colour)
    _curve(ins, centres, sums.means("insertion"), "insertion loss", "black")
    for name, colour in (("missing_predicted", "#2c5d8a"), ("missing_true", "black"),
                         ("missing_target", "#8a8a8a")):
        _curve(gaps, centres, sums.means(name), name.removeprefix("missing_"), colour)
    for ax, label in ((ce, "masked-token cross-entropy"), (acc, "masked-token accuracy"),
                      (ins, "insertion loss per sequence"), (gaps, "missing tokens per gap")):
        ax.set_xlabel("t")
        ax.set_title(label, fontsize=9)
        ax.set_xlim(0, 1)
        ax.legend(fontsize=7)
    if all(v is None or v > 0 for v in sums.means("insertion")):
        ins.set_yscale("log")
    _histogram(hist, found.spread)
    _spread_by_time(by_time, found.spread)
    if title:
        fig.suptitle(title, fontsize=10)
    return pictures._save(fig, path, pictures.DPI)


def _curve(ax, x: list[float], y: list[float | None], label: str, colour: str) -> None:
    ax.plot(x, [float("nan") if v is None else v for v in y], "o-", ms=3, label=label,
            color=colour)


def _histogram(ax, spread: list) -> None:
    ax.set_title("b_in across target tokens", fontsize=9)
    if not spread:
        ax.text(0.5, 0.5, "not measured", ha="center", va="center", transform=ax.transAxes)
        return
    middle = spread[len(spread) // 2]
    values = middle.values.numpy()
    span = max(float(values.max() - values.min()), 1e-6)
    ax.hist(values, bins=30, range=(float(values.min()) - 0.05 * span,
                                    float(values.max()) + 0.05 * span), color="#2c5d8a")
    ax.set_xlabel(f"b_in at t = {middle.t:g} (std {middle.std:.4g})")
    ax.set_ylabel("tokens")


def _spread_by_time(ax, spread: list) -> None:
    ax.set_title("b_in by t: mean, min-max", fontsize=9)
    if not spread:
        ax.text(0.5, 0.5, "not measured", ha="center", va="center", transform=ax.transAxes)
        return
    t = [s.t for s in spread]
    mean = [s.mean for s in spread]
    ax.errorbar(t, mean, yerr=[[m - s.min for m, s in zip(mean, spread)],
                               [s.max - m for m, s in zip(mean, spread)]],
                fmt="o-", ms=3, capsize=3, color="#2c5d8a")
    ax.set_xlabel("t")
    ax.set_xlim(0, 1)
