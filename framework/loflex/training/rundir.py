"""Run directories: the entries loflex manages, link checks, the writer lock, safe opens.

A run directory holds ``config.toml``, ``metrics.jsonl``, ``checkpoints/`` (``step-N``
folders and the ``latest`` pointer), ``report/`` and the lock file ``.loflex.lock``.
loflex never writes or deletes through a symbolic link there: a writer refuses a run
directory whose managed entries are links, and files are opened with ``O_NOFOLLOW``.
One process at a time writes into a run directory: it holds an exclusive ``flock`` on
the lock file, which records its pid; readers (sample, evaluate, order) take no lock.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from loflex.errors import LoflexError

LOCK_NAME = ".loflex.lock"
MANAGED = ("config.toml", "metrics.jsonl", "checkpoints", "report", LOCK_NAME)
EXCERPT_CHARS = 40


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """Return at most ``limit`` characters of ``text``, control characters escaped.

    Error messages quote file contents only through this, so a huge or hostile file
    never ends up whole (or with terminal escapes) in a message.
    """
    shown = repr(text[:limit])[1:-1]
    return shown if len(text) <= limit else f"{shown}..."


def link_error(path: Path) -> LoflexError:
    """The error for a symbolic link where loflex writes a file or folder of its own."""
    return LoflexError(f"'{path}' is a symbolic link; loflex does not write or delete through "
                       "links, so replace it with a real file or folder, or choose another "
                       "output")


def refuse_link(path: Path) -> None:
    """Raise :func:`link_error` when ``path`` itself is a symbolic link."""
    if os.path.islink(path):
        raise link_error(Path(path))


def refuse_links_in_run(run_dir: Path) -> None:
    """Raise when a managed entry of ``run_dir`` (or a checkpoint in it) is a link.

    Raises:
        LoflexError: naming the first link found.
    """
    run_dir = Path(run_dir)
    for name in MANAGED:
        refuse_link(run_dir / name)
    checkpoints = run_dir / "checkpoints"
    if checkpoints.is_dir():
        for entry in os.scandir(checkpoints):
            if entry.is_symlink() and (entry.name == "latest" or entry.name.startswith("step-")
                                       or entry.name.startswith(".step-")):
                raise link_error(checkpoints / entry.name)


def open_regular(path: Path, flags: int, mode: int = 0o666, *, follow: bool = False) -> int:
    """``os.open`` a regular file, by default without following a final link; return the fd.

    Opens non-blocking first, so a FIFO never hangs the caller, and refuses anything
    but a regular file (a device such as ``/dev/zero``, a FIFO, a folder). ``follow``
    lets a reader follow a link to a regular file.

    Raises:
        LoflexError: the path is a link (unless ``follow``) or not a regular file.
    """
    nofollow = 0 if follow else os.O_NOFOLLOW
    try:
        fd = os.open(path, flags | nofollow | os.O_NONBLOCK | os.O_CLOEXEC, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise link_error(Path(path)) from None
        if exc.errno in (errno.ENXIO, errno.EISDIR):  # FIFO without reader, folder
            raise not_regular_error(Path(path)) from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise not_regular_error(Path(path))
    os.set_blocking(fd, True)
    return fd


def not_regular_error(path: Path) -> LoflexError:
    """The error for a device, FIFO, socket or folder where a regular file is expected."""
    return LoflexError(f"'{path}' is {kind_of(path)}, not a regular file; pass a regular file")


def kind_of(path: Path) -> str:
    """Describe what is at ``path`` ("a folder", "a FIFO", "a device", ...)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return "missing"
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISREG, "a regular file")):
        if test(mode):
            return name
    return "not a regular file"


def read_head(path: Path, limit: int) -> str:
    """Return the first ``limit`` bytes of a regular file as text (bad UTF-8 replaced)."""
    fd = open_regular(path, os.O_RDONLY)
    with os.fdopen(fd, "rb") as handle:
        return handle.read(limit).decode("utf-8", errors="replace")


def append_text(path: Path, text: str) -> None:
    """Append ``text`` to the regular file ``path`` (created if missing), never via a link."""
    fd = open_regular(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    with os.fdopen(fd, "a", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()


def is_run_dir(path: Path) -> bool:
    """Whether ``path`` looks like a directory written by ``loflex train``."""
    return os.path.lexists(Path(path) / LOCK_NAME) or os.path.isdir(Path(path) / "checkpoints")


def refuse_foreign_folder(path: Path, force: bool) -> None:
    """Refuse to train into ``path`` when it is a file, or a non-empty folder of something else.

    Raises:
        LoflexError: ``path`` is not a folder, or holds files but no loflex run and
            ``force`` is not set.
    """
    path = Path(path)
    if os.path.lexists(path) and not path.is_dir():
        raise LoflexError(f"run directory '{path}' is {kind_of(path)}, not a folder; choose "
                          "another -o")
    if path.is_dir() and not force and not is_run_dir(path) and any(path.iterdir()):
        raise LoflexError(f"'{path}' already holds files and is not a loflex run directory; "
                          "choose a new or empty folder with -o, or pass --force to train into "
                          "it (its config.toml and metrics.jsonl are then replaced)")


def lock_holder(path: Path) -> str:
    """Return the pid recorded in the lock file ``path`` ("unknown" when unreadable)."""
    try:
        text = read_head(path, 32).strip()
    except (OSError, LoflexError):
        return "unknown"
    return text if text.isdigit() else "unknown"


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold the exclusive writer lock of ``run_dir`` (created if missing) for the block.

    Raises:
        LoflexError: another process holds it (its pid is named), or the lock file is
            a link or not a regular file.
    """
    run_dir = Path(run_dir)
    path = run_dir / LOCK_NAME
    fd = open_regular(path, os.O_RDWR | os.O_CREAT)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LoflexError(
                f"run directory '{run_dir}' is in use by another loflex process (pid "
                f"{lock_holder(path)}); wait until it finishes or stop it, then retry"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)
