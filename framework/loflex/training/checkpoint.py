"""Safe checkpoints: safetensors weights, JSON state, atomic directory writes.

Layout of one checkpoint directory::

    run.json          the full validated run config
    state.json        step, domain state (vocabulary), component owners, RNG and schedule state
    model.safetensors generator.* and order.* weights
    ema.safetensors   EMA weights (when EMA is on)
    optim.safetensors optimiser state, flattened to tensors (no pickle)

A run directory holds ``checkpoints/step-NNNNNNNN/`` (the last K) and
``checkpoints/latest`` naming the newest complete one. Loading never unpickles.

``state.json["format"]`` is ``loflex-checkpoint-N``, N the format version
(``loflex-checkpoint`` alone counts as version 1). Checkpoints of an older version load;
a newer one is refused with the version it needs. Names renamed since a checkpoint was
written are mapped to their new names when it is read (:data:`RENAMES`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from loflex.errors import CheckpointError, LoflexError
from loflex.training.rundir import excerpt, kind_of, open_regular, read_head, refuse_link
from loflex.version import __version__

FORMAT_NAME = "loflex-checkpoint"
FORMAT_VERSION = 1
FORMAT = f"{FORMAT_NAME}-{FORMAT_VERSION}"
FORMAT_PATTERN = re.compile(rf"^{FORMAT_NAME}(?:-([1-9][0-9]{{0,8}}))?$")
LATEST = "latest"
STEP_NAME = re.compile(r"^step-[0-9]{1,18}$")
LATEST_MAX_BYTES = 256
COMPONENT_SECTIONS = ("domain", "order", "generator")

RENAMES: dict[str, dict[str, str]] = {
    "parameters": {},
    "options": {},
}
"""Renamed names, old -> new, applied by :func:`load` so that older checkpoints load.

``parameters``: prefixes of the weight names in ``model.safetensors`` and
``ema.safetensors`` (``"generator.rate_head."`` -> ``"generator.insert_head."``); a
prefix matches whole dotted parts. ``options``: dotted keys of ``run.json`` whose last
part was renamed; a component's option is written ``section.component.key``
(``"generator.transformer.old"`` -> ``"generator.transformer.new"``) and renamed only when
the run uses that component, a train or sample setting ``section.key``
(``"train.old"`` -> ``"train.new"``). Nothing has been renamed yet.
"""


@dataclass
class Checkpoint:
    """The contents of one checkpoint directory."""

    path: Path
    run: dict[str, Any]
    state: dict[str, Any]
    model: dict[str, torch.Tensor]
    ema: dict[str, torch.Tensor] | None = None
    optim: dict[str, torch.Tensor] | None = field(default=None, repr=False)

    @property
    def step(self) -> int:
        return int(self.state["step"])


def fsync_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` and fsync it."""
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_text(path: Path, data: str | bytes) -> None:
    """Replace ``path`` with ``data`` (text is written as UTF-8) atomically.

    The data goes to a temp file created exclusively next to ``path``, is fsynced, and
    the temp file is renamed over ``path``: a symbolic link at ``path`` is replaced, never
    written through, and on any error (a full disk) the temp file is removed and ``path``
    keeps its old contents.
    """
    path = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o666 & ~_umask())  # mkstemp makes 0600 files
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def save(directory: Path, *, run: dict, state: dict, model: dict[str, torch.Tensor],
         ema: dict[str, torch.Tensor] | None = None,
         optim: dict[str, torch.Tensor] | None = None) -> Path:
    """Write a checkpoint directory atomically: build it under a temp name, then rename.

    Returns:
        The final directory. A crash at any point leaves either the old state or the
        complete new checkpoint, never a partial one under the final name.
    """
    directory = Path(directory)
    refuse_link(directory.parent)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}.tmp-"))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        state = {"format": FORMAT, **state}
        fsync_write(tmp / "run.json", json.dumps(run, indent=1).encode())
        fsync_write(tmp / "state.json", json.dumps(state, indent=1).encode())
        _save_tensors(model, tmp / "model.safetensors")
        if ema is not None:
            _save_tensors(ema, tmp / "ema.safetensors")
        if optim is not None:
            _save_tensors(optim, tmp / "optim.safetensors")
        _replace_dir(tmp, directory)
        _fsync_dir(directory.parent)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return directory


def _replace_dir(new: Path, directory: Path) -> None:
    """Move ``new`` to ``directory``; an existing one is renamed away first, then deleted.

    Every moment of a crash leaves either the old complete checkpoint or the new one under
    the final name, never a half-deleted directory.
    """
    old = None
    if os.path.lexists(directory):
        old = directory.with_name(f".{directory.name}.old-{os.getpid()}")
        os.replace(directory, old)
    os.replace(new, directory)
    if old is not None:
        remove_tree(old)


def remove_tree(path: Path) -> None:
    """Delete the folder ``path``; a symbolic link is removed itself, never followed."""
    if os.path.islink(path):
        os.unlink(path)
    else:
        shutil.rmtree(path, ignore_errors=True)


def step_number(path: Path) -> int:
    """The step of a ``step-N`` checkpoint directory, for numeric sorting."""
    return int(Path(path).name.split("-", 1)[1])


def step_dirs(checkpoints_dir: Path) -> list[Path]:
    """The ``step-N`` folders of ``checkpoints_dir``, oldest first (numeric order)."""
    found = [p for p in Path(checkpoints_dir).glob("step-*")
             if STEP_NAME.match(p.name) and p.is_dir()]
    return sorted(found, key=step_number)


COMPLETE = ("run.json", "state.json", "model.safetensors")


def is_complete(directory: Path) -> bool:
    """Whether a checkpoint directory holds every file a checkpoint needs."""
    return all((directory / name).exists() for name in COMPLETE)


def _save_tensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise CheckpointError(f"refusing to save non-finite values in '{name}'")
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(path))
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def resolve(path: str | Path) -> Path:
    """Return the checkpoint directory for a run directory or a checkpoint directory.

    Raises:
        CheckpointError: nothing loadable is there.
    """
    path = Path(path)
    if (path / "model.safetensors").exists() or (path / "state.json").exists():
        return path
    target = _latest_target(path / "checkpoints")
    if target is not None and target.is_dir() and is_complete(target):
        return target
    steps = step_dirs(path / "checkpoints") if path.is_dir() else []
    candidates = [c for c in steps if is_complete(c)]
    if candidates:
        return candidates[-1]
    if steps:
        missing = [name for name in COMPLETE if not (steps[-1] / name).exists()]
        raise CheckpointError(
            f"'{steps[-1]}' is missing {', '.join(missing)}; the checkpoint is incomplete and "
            "the run has no complete one — retrain, or restore the files from a copy"
        )
    if not path.exists():
        raise CheckpointError(f"'{path}' does not exist; pass a run directory or a checkpoint")
    raise CheckpointError(
        f"'{path}' holds no checkpoint; pass a run directory written by `loflex train` "
        "or one of its checkpoints/step-* directories"
    )


def _latest_target(checkpoints: Path) -> Path | None:
    """The folder ``checkpoints/latest`` names (None without the pointer).

    Reads at most ``LATEST_MAX_BYTES`` of a regular file, never through a link, and
    quotes at most a short excerpt of a bad pointer.
    """
    latest = checkpoints / LATEST
    fallback = "delete it to fall back to the newest checkpoints/step-* directory"
    if not os.path.lexists(latest):
        return None
    if os.path.islink(latest):
        raise CheckpointError(f"'{latest}' is a symbolic link, not the pointer file loflex "
                              f"writes; {fallback}")
    try:
        name = read_head(latest, LATEST_MAX_BYTES).strip()
    except LoflexError:
        raise CheckpointError(f"'{latest}' is {kind_of(latest)}, not the pointer file loflex "
                              f"writes; {fallback}") from None
    if not STEP_NAME.match(name):
        raise CheckpointError(f"'{latest}' names '{excerpt(name)}', not a step-* checkpoint of "
                              f"this run; {fallback}")
    return checkpoints / name


def load(path: str | Path, *, with_optim: bool = False) -> Checkpoint:
    """Load a checkpoint (run dir or checkpoint dir) without unpickling anything.

    A run directory that is still training may delete the checkpoint being read (it
    keeps only the last few); the newest complete one is then read instead.

    Raises:
        CheckpointError: missing, truncated or foreign files, with the fix.
    """
    for attempt in range(3):
        directory = resolve(path)
        try:
            return _load_directory(directory, with_optim)
        except CheckpointError:
            if directory == Path(path) or os.path.isdir(directory) or attempt == 2:
                raise
    raise AssertionError("unreachable")


def _load_directory(directory: Path, with_optim: bool) -> Checkpoint:
    run = _read_json(directory / "run.json")
    state = _read_json(directory / "state.json")
    format_version(state, directory)
    run = renamed_options(run, RENAMES["options"])
    model = renamed_parameters(_load_tensors(directory / "model.safetensors"),
                               RENAMES["parameters"], directory)
    ema_path = directory / "ema.safetensors"
    ema = _load_tensors(ema_path) if ema_path.exists() else None
    ema = renamed_parameters(ema, RENAMES["parameters"], directory) if ema is not None else None
    optim_path = directory / "optim.safetensors"
    optim = _load_tensors(optim_path) if with_optim and optim_path.exists() else None
    return Checkpoint(directory, run, state, model, ema, optim)


def renamed_parameter(name: str, renames: dict[str, str]) -> str:
    """Return ``name`` with the longest matching old prefix of ``renames`` replaced."""
    matches = [old for old in renames if _prefix_matches(name, old)]
    if not matches:
        return name
    old = max(matches, key=len)
    return renames[old] + name[len(old):]


def _prefix_matches(name: str, prefix: str) -> bool:
    """Whether ``prefix`` covers whole dotted parts of ``name`` ("a.b" matches "a.b.c", not "a.bc")."""
    if prefix.endswith("."):
        return name.startswith(prefix)
    return name == prefix or name.startswith(prefix + ".")


def renamed_parameters(tensors: dict[str, torch.Tensor], renames: dict[str, str],
                       directory: Path) -> dict[str, torch.Tensor]:
    """Return ``tensors`` under their current names (see :data:`RENAMES`).

    Raises:
        CheckpointError: two stored names map to one current name.
    """
    if not renames:
        return tensors
    result: dict[str, torch.Tensor] = {}
    for name, tensor in tensors.items():
        new = renamed_parameter(name, renames)
        if new in result:
            raise CheckpointError(f"'{directory}' holds both '{new}' and a former name of it; "
                                  "remove one of them from the checkpoint")
        result[new] = tensor
    return result


def renamed_options(run: dict[str, Any], renames: dict[str, str]) -> dict[str, Any]:
    """Return a checkpoint's ``run.json`` with renamed option keys moved (a copy if any may be).

    A key whose new name is already set keeps the new value.
    """
    if not renames:
        return run
    run = json.loads(json.dumps(run))
    for old, new in renames.items():
        location = _option_container(run, old)
        old_key, new_key = old.rsplit(".", 1)[-1], new.rsplit(".", 1)[-1]
        assert old.rsplit(".", 1)[0] == new.rsplit(".", 1)[0], f"{old} -> {new}: one section"
        if location is not None and old_key in location:
            value = location.pop(old_key)
            location.setdefault(new_key, value)
    return run


def _option_container(run: dict[str, Any], path: str) -> dict | None:
    """Return the dict of ``run`` that holds the last part of ``path``, or None.

    ``section.component.key`` names the options of a component section, and only when
    the run uses that component; any other path is followed through nested dicts.
    """
    parts = path.split(".")
    if parts[0] in COMPONENT_SECTIONS:
        spec = run.get(parts[0])
        if len(parts) != 3 or not isinstance(spec, dict) or spec.get("name") != parts[1]:
            return None
        options = spec.setdefault("options", {})
        return options if isinstance(options, dict) else None
    container: Any = run
    for part in parts[:-1]:
        container = container.get(part) if isinstance(container, dict) else None
    return container if isinstance(container, dict) else None


def format_version(state: dict, directory: Path) -> int:
    """Return the format version of a checkpoint's ``state.json`` (no version: 1).

    Raises:
        CheckpointError: not a loflex checkpoint, or written by a newer loflex.
    """
    found = state.get("format")
    match = FORMAT_PATTERN.match(found) if isinstance(found, str) else None
    if match is None:
        raise CheckpointError(
            f"'{directory}' is not a loflex checkpoint (format '{excerpt(str(found))}'); "
            "pass a directory written by `loflex train`"
        )
    version = int(match.group(1) or 1)
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"'{directory}' is a version {version} checkpoint, but loflex {__version__} reads "
            f"checkpoint versions up to {FORMAT_VERSION}; upgrade loflex to load it"
        )
    return version


def _read_json(path: Path) -> dict:
    """Read a checkpoint's JSON object (a regular file, never unpickled)."""
    try:
        with os.fdopen(open_regular(path, os.O_RDONLY, follow=True), "rb") as handle:
            value = json.loads(handle.read().decode("utf-8"))
    except FileNotFoundError:
        raise CheckpointError(
            f"checkpoint file '{path}' is missing; the checkpoint is incomplete, use an earlier one"
        ) from None
    except LoflexError as exc:
        raise CheckpointError(f"checkpoint file {exc.message}") from None
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise CheckpointError(
            f"checkpoint file '{path}' is corrupt or truncated; use an earlier checkpoint"
        ) from None
    if not isinstance(value, dict):
        raise CheckpointError(f"checkpoint file '{path}' holds a JSON {type(value).__name__}, "
                              "not an object; use an earlier checkpoint")
    return value


def _load_tensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.exists():
        raise CheckpointError(f"'{path}' is missing; the checkpoint is incomplete")
    if not path.is_file():
        raise CheckpointError(f"'{path}' is {kind_of(path)}, not a regular file; use an earlier "
                              "checkpoint")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(
            f"'{path}' is not a readable safetensors file ({excerpt(str(exc), 160)}); it may be truncated — "
            "use an earlier checkpoint"
        ) from None


def keep_last(checkpoints_dir: Path, keep: int) -> None:
    """Delete all but the ``keep`` newest ``step-*`` checkpoints, and stale temp folders.

    Steps are compared as numbers (``step-100000000`` is newer than ``step-99999999``);
    links are removed themselves, never followed. A checkpoint is renamed to a hidden
    name before it is deleted, so a crash while deleting never leaves a partial
    ``step-*`` directory behind; hidden folders left by an earlier crash (half-written or
    half-deleted checkpoints) are removed here.
    """
    checkpoints_dir = Path(checkpoints_dir)
    refuse_link(checkpoints_dir)
    steps = step_dirs(checkpoints_dir)
    for old in steps[:-keep] if keep > 0 else []:
        doomed = old.with_name(f".{old.name}.deleting")
        if os.path.lexists(doomed):
            remove_tree(doomed)
        os.replace(old, doomed)
    for stale in checkpoints_dir.glob(".step-*"):
        if stale.is_dir() or stale.is_symlink():
            remove_tree(stale)


def flatten_optimizer(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimiser ``state_dict`` into tensors and JSON-able metadata."""
    tensors: dict[str, torch.Tensor] = {}
    per_param: dict[str, dict] = {}
    for pid, pstate in state["state"].items():
        scalars = {}
        for key, value in pstate.items():
            if torch.is_tensor(value):
                tensors[f"{pid}.{key}"] = value
            else:
                scalars[key] = value
        per_param[str(pid)] = scalars
    return tensors, {"param_groups": state["param_groups"], "scalars": per_param}


def unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    """Inverse of :func:`flatten_optimizer`."""
    state: dict[int, dict] = {}
    for pid, scalars in meta["scalars"].items():
        state[int(pid)] = dict(scalars)
    for name, value in tensors.items():
        pid, key = name.split(".", 1)
        state.setdefault(int(pid), {})[key] = value
    return {"state": state, "param_groups": meta["param_groups"]}
