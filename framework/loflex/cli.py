"""The ``loflex`` command line.

User errors (:class:`loflex.errors.LoflexError`) print ``Error: ...`` on one line (plus
indented details) and exit 1, and so do the operating system's refusals a user can fix
(a full disk, a read-only or missing folder, a path through a file); anything else is a
bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import sys

from loflex.errors import LoflexError

COMMAND_MODULES = (
    "loflex.commands.info",
    "loflex.commands.model",
    "loflex.commands.experiment",
    "loflex.commands.bench",
    "loflex.commands.order",
    "loflex.commands.report",
    "loflex.commands.models",
    "loflex.commands.diagnose",
)


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser with every sub-command."""
    parser = argparse.ArgumentParser(
        prog="loflex",
        description="Insertion-based sequence generation with learnable order dynamics.",
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_commands(sub)
    return parser


def _version() -> str:
    from loflex import __version__

    return f"loflex {__version__}"


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.handler(args)
    except LoflexError as exc:
        print(exc.render(), file=sys.stderr)
        return 1
    except OSError as exc:
        message = os_error_message(exc)
        if message is None:
            raise
        print(f"Error: {message}", file=sys.stderr)
        return 1
    except ValueError as exc:
        if "integer string conversion" not in str(exc):
            raise
        print(f"Error: a number has more than {sys.get_int_max_str_digits()} digits; no setting "
              "takes one that large, so give a smaller value", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130
    return int(result or 0)


OS_ERROR_FIXES = {
    errno.ENOSPC: "free disk space or write elsewhere, then rerun (a training run continues "
                  "from its last complete checkpoint with --resume RUN_DIR)",
    errno.EDQUOT: "free space within your disk quota or write elsewhere, then rerun",
    errno.EROFS: "the file system is read-only; choose a writable location",
    errno.EACCES: "check the permissions or choose another location",
    errno.EPERM: "check the permissions or choose another location",
    errno.ENOTDIR: "a part of the path is a file, not a folder; choose another path",
    errno.EEXIST: "something else already has that name; choose another path",
    errno.EISDIR: "that is a folder; name a file",
    errno.ENAMETOOLONG: "choose a shorter path",
    errno.ENOENT: "check the path",
}


def os_error_message(exc: OSError) -> str | None:
    """One line for an operating-system error a user can fix; None for any other."""
    fix = OS_ERROR_FIXES.get(exc.errno)
    if fix is None:
        return None
    where = f": '{exc.filename}'" if exc.filename else ""
    return f"{exc.strerror or 'operating system error'}{where}; {fix}"


def add_set_option(parser: argparse.ArgumentParser) -> None:
    """Add the repeatable ``--set section.key=value`` override option."""
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="override a run setting, e.g. train.lr=3e-4")


if __name__ == "__main__":
    sys.exit(main())
