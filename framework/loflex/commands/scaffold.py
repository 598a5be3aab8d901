"""``loflex new plugin NAME --kind order|generator|domain``: start a plugin package."""

from __future__ import annotations

from pathlib import Path

from loflex.extension.scaffold import KINDS, names, write_plugin


def add_commands(sub) -> None:
    p = sub.add_parser("new", help="write a new plugin package (a template that installs, "
                       "registers and passes its contract checks)")
    p.add_argument("what", choices=("plugin",), help="what to create (a plugin package)")
    p.add_argument("name", help="lower-kebab name of the plugin and of its component, e.g. "
                   "my-order")
    p.add_argument("--kind", choices=KINDS, required=True,
                   help="the component the plugin registers")
    p.add_argument("-o", "--output", type=Path, default=None,
                   help="folder to write the package into (default ./NAME)")
    p.add_argument("--force", action="store_true", help="write into a folder that holds files")
    p.set_defaults(handler=cmd_new)


def cmd_new(args) -> int:
    folder = args.output if args.output is not None else Path(args.name)
    written = write_plugin(args.name, args.kind, folder, force=args.force)
    for path in written:
        print(f"wrote {path}")
    print(f"\nnext: pip install -e {folder} && python -m pytest {folder / 'tests'}\n"
          f"then `loflex components` lists the {args.kind} '{names(args.name)['name']}'")
    return 0
