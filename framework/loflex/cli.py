"""The ``loflex`` command line.

User errors (:class:`loflex.errors.LoflexError`) print ``Error: ...`` on one line (plus
indented details) and exit 1, and so do the operating system's refusals a user can fix
(a full disk, a read-only or missing folder, a path through a file); anything else is a
bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys

from loflex.commands import (
    Commands,
    add_set_option,
    bench,
    diagnose,
    experiment,
    info,
    model,
    models,
    order,
    report,
    scaffold,
)
from loflex.errors import LoflexError
from loflex.extension import plugins
from loflex.version import __version__

COMMAND_MODULES = (info, model, experiment, bench, order, report, models, diagnose, scaffold)
SIGPIPE_STATUS = 141  # 128 + SIGPIPE, what a shell reports for a tool whose reader left

__all__ = ["add_set_option", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser with every sub-command, the plugins' included."""
    parser = argparse.ArgumentParser(
        prog="loflex",
        description="Insertion-based sequence generation with learnable order dynamics.",
    )
    parser.add_argument("--version", action="version", version=f"loflex {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMAND_MODULES:
        module.add_commands(sub)
    add_plugin_commands(Commands(sub))
    return parser


def add_plugin_commands(commands: Commands) -> None:
    """Call every plugin's ``register_commands``; a plugin whose hook raises is skipped."""
    pm = plugins.get_plugin_manager()
    for impl in pm.hook.register_commands.get_hookimpls():
        if plugins.has_failed(impl.plugin_name):
            continue
        try:
            impl.function(commands=commands)
        except Exception as exc:  # one broken plugin must not take the CLI down
            plugins.record_failure(
                impl.plugin_name, plugins.distributions.get(impl.plugin_name, "unknown distribution"),
                f"hook register_commands raised {type(exc).__name__}: {exc}")


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.handler(args)
        sys.stdout.flush()
    except BrokenPipeError:
        return closed_pipe()
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
    except KeyboardInterrupt as exc:
        print(f"Interrupted: {exc}" if str(exc) else "Interrupted.", file=sys.stderr)
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


def closed_pipe() -> int:
    """End quietly when the reader of stdout has gone (``loflex components | head``).

    stdout is pointed at the null device so that the interpreter's last flush does not
    fail again.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass
    return SIGPIPE_STATUS


if __name__ == "__main__":
    sys.exit(main())
