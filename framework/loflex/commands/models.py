"""``loflex models``: the pretrained models the installed plugins ship."""

from __future__ import annotations

import json


def add_commands(sub) -> None:
    p = sub.add_parser("models", help="list the pretrained models installed plugins ship")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=cmd_models)


def model_rows() -> list[dict]:
    """Describe every registered pretrained model; a damaged one carries an ``error``."""
    from loflex.errors import CheckpointError
    from loflex.extension.pretrained import available, describe

    rows = []
    for name, model in sorted(available().items()):
        try:
            rows.append(describe(model))
        except CheckpointError as exc:
            rows.append({"name": name, "description": model.description,
                         "package": model.package, "distribution": model.distribution,
                         "error": exc.message})
    return rows


def cmd_models(args) -> int:
    rows = model_rows()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no pretrained models installed; plugins ship them through the "
              "register_pretrained hook (docs/plugin-hooks.md)")
        return 0
    print(format_rows(rows))
    return 0


def format_rows(rows: list[dict]) -> str:
    """Render the models as an aligned table, one line each plus its description."""
    width = max(len(row["name"]) for row in rows)
    lines = [f"{'name':<{width}}  {'domain':<12} {'order':<14} {'parameters':>10} "
             f"{'MB':>7}  metrics"]
    for row in rows:
        if "error" in row:
            lines.append(f"{row['name']:<{width}}  DAMAGED: {row['error']}")
        else:
            metrics = " ".join(f"{k}={_number(v)}" for k, v in row["metrics"].items()) or "-"
            lines.append(f"{row['name']:<{width}}  {row['domain']:<12} {row['order']:<14} "
                         f"{row['parameters']:>10,} {row['megabytes']:>7.2f}  {metrics}")
        lines.append(f"{'':<{width}}  {row['description']}  [{row['package']}]")
    return "\n".join(lines)


def _number(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".") if value != int(value) else str(int(value))
