"""Change a shipped model's default sampler settings and re-measure its card.

    python docs/scripts/set_sampler_default.py MODEL_FOLDER KEY=VALUE ... \
        [--domain-option KEY=VALUE ...] [--samples 200] [--steps 256] [--seed 0]

Each ``KEY=VALUE`` sets a field of the folder's run.json ``sample`` section (e.g.
``completion_rounds=4``), and each ``--domain-option`` one of its domain options that only
sampling reads (e.g. ``spelled_fragments=false``), so ``loflex sample`` and ``loflex
evaluate`` use them by default.
The metrics are then measured again with ``loflex evaluate`` on the folder itself and
replace those of ``card.json`` and the closing table of ``card.md``; the card's summary
text is left as it is.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ship_model import evaluate, measured_section, parse_setting, set_sampler_defaults

MEASURED = "Measured on the packed folder with"


def parse_json_setting(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` with the value read as JSON (``false``, ``4``, ``"x"``)."""
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"'{text}' is not KEY=VALUE; write e.g. {text}=false")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        raise argparse.ArgumentTypeError(f"'{value}' is not JSON; write e.g. {key}=false") from None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", type=Path)
    p.add_argument("settings", nargs="*", type=parse_setting, metavar="KEY=VALUE")
    p.add_argument("--domain-option", action="append", default=[], type=parse_json_setting,
                   metavar="KEY=VALUE", help="a domain option, value as JSON (e.g. false)")
    p.add_argument("--samples", type=int, default=200)
    p.add_argument("--steps", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    card_path = args.folder / "card.json"
    run = json.loads((args.folder / "run.json").read_text())
    run["domain"].setdefault("options", {}).update(dict(args.domain_option))
    set_sampler_defaults(args.folder, run, dict(args.settings))
    metrics = evaluate(args.folder, args.samples, args.steps, args.seed)
    card = json.loads(card_path.read_text())
    card["metrics"] = metrics
    card["evaluation"] = {"num_samples": args.samples, "steps": args.steps, "seed": args.seed}
    card_path.write_text(json.dumps(card, indent=1) + "\n")
    text = (args.folder / "card.md").read_text()
    head = text[:text.index(MEASURED)]
    (args.folder / "card.md").write_text(head + measured_section(
        args.folder.name, run, metrics, args.samples, args.steps, args.seed))
    print(f"{args.folder.name}: {metrics}")


if __name__ == "__main__":
    main()
