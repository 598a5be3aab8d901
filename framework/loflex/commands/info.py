"""``loflex plugins``, ``loflex components`` and ``loflex data``: looking around."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from loflex.commands import add_set_option
from loflex.config import SECTIONS, ComponentSpec, apply_overrides
from loflex.contracts import SPLITS, Domain, Generator
from loflex.diffusion.order import OrderDynamics
from loflex.errors import ConfigError
from loflex.extension import plugins, registry
from loflex.sampling.samples_io import refuse_overwrite

KINDS = (("generators", Generator), ("order dynamics", OrderDynamics), ("domains", Domain))


def add_commands(sub) -> None:
    p = sub.add_parser("plugins", help="list installed plugins, their versions and hooks")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=cmd_plugins)

    p = sub.add_parser("components", help="list registered generators, orders and domains")
    p.add_argument("--options", action="store_true",
                   help="show every option with its description, and the train and sample "
                   "settings")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=cmd_components)

    p = sub.add_parser("options", help="list the train.* and sample.* settings of a run")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=cmd_options)

    p = sub.add_parser("data", help="show decoded examples of a domain")
    p.add_argument("domain", help="registered domain name")
    add_set_option(p)
    p.add_argument("--split", choices=SPLITS, default="train",
                   help="which split to show (default train)")
    p.add_argument("--limit", type=int, default=5, help="how many examples (default 5)")
    p.add_argument("--format", choices=("text", "jsonl"), default="text",
                   help="readable text or one JSON object per line (default text)")
    p.add_argument("-o", "--output", type=Path, help="write to this file instead of stdout")
    p.add_argument("--force", action="store_true", help="overwrite the output file")
    p.set_defaults(handler=cmd_data)


def cmd_plugins(args) -> int:
    for _, base in KINDS:  # run every hook first, so a plugin that fails is reported as failed
        registry.registrations(base)
    infos = plugins.plugin_infos()
    failures = [vars(f) for f in plugins.failures]
    if args.json:
        print(json.dumps({"plugins": infos, "failed": failures}, indent=2))
        return 0
    for info in infos:
        print(f"{info['name']}  ({info['distribution']})  hooks: {', '.join(info['hooks'])}")
    for failure in failures:
        print(f"{failure['plugin']}  ({failure['distribution']})  FAILED: {failure['problem']}")
    return 0


def describe_options(cls) -> list[dict]:
    """Return name, type, default and description of every option of a component."""
    return describe_fields(cls.Options)


def describe_fields(model) -> list[dict]:
    """Return name, type, default and description of every field of a pydantic model."""
    rows = []
    for name, field in model.model_fields.items():
        annotation = getattr(field.annotation, "__name__", None) or str(field.annotation)
        default = None if field.is_required() else field.get_default(call_default_factory=True)
        rows.append({"name": name, "type": annotation.replace("typing.", ""),
                     "default": default, "description": field.description or ""})
    return rows


def cmd_components(args) -> int:
    table = {}
    for title, base in KINDS:
        regs = registry.registrations(base)
        table[title] = {name: {"plugin": reg.plugin, "distribution": reg.distribution,
                               "summary": (reg.cls.__doc__ or "").strip().split("\n")[0],
                               "options": describe_options(reg.cls)}
                        for name, reg in sorted(regs.items())}
    if args.json:
        if args.options:
            table["settings"] = run_settings()
        print(json.dumps(table, indent=2, default=str))
        return 0
    for title, entries in table.items():
        print(f"{title}:")
        for name, info in entries.items():
            print(f"  {name:<16} {info['summary']}  [{info['plugin']}]")
            if args.options:
                print_options(info["options"], indent=6)
    if args.options:
        print_settings()
    return 0


def run_settings() -> dict[str, list[dict]]:
    """Return section -> its settings (``train``, ``sample``) with types and descriptions."""
    return {section: describe_fields(model) for section, model in SECTIONS.items()}


def print_options(rows: list[dict], indent: int) -> None:
    """Print one line per option: name, default, type and description."""
    for opt in rows:
        print(f"{' ' * indent}{opt['name']} = {opt['default']!r}  ({opt['type']}) "
              f"{opt['description']}")


def print_settings() -> None:
    """Print every train.* and sample.* setting under its section."""
    for section, rows in run_settings().items():
        print(f"{section} settings (--set {section}.KEY=VALUE, or [{section}] in a run file):")
        print_options(rows, indent=2)


def cmd_options(args) -> int:
    if args.json:
        print(json.dumps(run_settings(), indent=2, default=str))
    else:
        print_settings()
    return 0


def cmd_data(args) -> int:
    data = apply_overrides({"domain": {"name": args.domain}}, args.overrides)
    extra = set(data) - {"domain"}
    if extra:
        raise ConfigError(f"`loflex data` only takes domain.* settings, not {sorted(extra)}")
    spec = ComponentSpec.model_validate(data["domain"])
    domain = registry.build(Domain, spec)
    examples = domain.examples(args.split)
    rows = [domain.describe(examples[i]) for i in range(min(args.limit, len(examples)))]
    lines = []
    for row in rows:
        if args.format == "jsonl":
            lines.append(json.dumps(row))
        else:
            prompt = f"prompt: {row['prompt']}\n" if row["prompt"] else ""
            lines.append(f"{prompt}target: {row['target']}\nids: {row['prompt_ids']} | "
                         f"{row['target_ids']}\n")
    text = "\n".join(lines) + "\n"
    if args.output:
        from loflex.training.checkpoint import atomic_write_text

        refuse_overwrite(args.output, args.force)
        atomic_write_text(args.output, text)
    else:
        sys.stdout.write(text)
    return 0
