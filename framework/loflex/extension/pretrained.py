"""Pretrained models shipped inside plugin packages: registering, finding, checking, loading.

A pretrained model is a folder inside an installed Python package (by convention
``<package>/pretrained/<name>/``), registered by its plugin through the
``register_pretrained`` hook. The folder is a checkpoint folder plus a model card::

    run.json, state.json   the run config and state, as ``loflex train`` writes them
    model.safetensors      the weights: fp16, bf16 or fp32 (always loaded as fp32)
    ema.safetensors        optional EMA weights (used instead, as for any checkpoint)
    card.md                the model card: training command and run file, steps, CPU-hours,
                           data and its licence, the metrics measured with `loflex evaluate`
    card.json              optional: {"metrics": {"exact_match": 0.85, ...}}, the measured
                           metrics, and "headline": ["exact_match", ...], the ones
                           `loflex models` shows (default: every metric)

:func:`pack` writes such a folder from a training run. A model name works wherever a run
or checkpoint directory is accepted; an existing path of the same name wins. The folders
are only ever read: nothing is written inside an installed package.
"""

from __future__ import annotations

import importlib.resources
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import torch

from loflex.errors import CheckpointError, ConfigError, PluginError
from loflex.extension import plugins
from loflex.training import checkpoint as ckpt

NAME_PATTERN = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)+$")
REQUIRED_FILES = ("run.json", "state.json", "model.safetensors")
WEIGHT_FILES = ("model.safetensors", "ema.safetensors")
SAFETENSORS_DTYPES = ("F16", "BF16", "F32")
PACK_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
KEPT_STATE = ("step", "domain", "owners", "train_seconds")
HEADER_LIMIT = 100_000_000


@dataclass(frozen=True)
class PretrainedModel:
    """One registered pretrained model: where it lives and who ships it."""

    name: str
    package: str
    folder: str
    description: str
    plugin: str
    distribution: str

    @property
    def origin(self) -> str:
        """``package P, distribution D``: what a user reinstalls when the model is damaged."""
        return f"package {self.package}, distribution {self.distribution}"

    def path(self) -> Path:
        """Return the model's folder inside its installed package (not checked).

        Raises:
            CheckpointError: the package cannot be imported or is not installed as files.
        """
        try:
            root = importlib.resources.files(self.package)
        except (ImportError, TypeError, ValueError) as exc:
            raise CheckpointError(
                f"pretrained model '{self.name}' lives in package '{self.package}', which cannot "
                f"be imported ({type(exc).__name__}: {exc}); reinstall {self.distribution}"
            ) from None
        folder = root.joinpath(*PurePosixPath(self.folder).parts)
        if not isinstance(folder, Path):
            raise CheckpointError(
                f"pretrained model '{self.name}': package '{self.package}' is not installed as "
                "plain files (a zip?); install it unpacked with pip"
            )
        return folder


class _Registrar:
    """The ``register`` callback one plugin's ``register_pretrained`` receives."""

    def __init__(self, table: dict[str, PretrainedModel], plugin: str, distribution: str):
        self.table, self.plugin, self.distribution = table, plugin, distribution

    def __call__(self, name: str, *, package: str, description: str,
                 folder: str | None = None) -> None:
        """Register the model ``name`` found in ``folder`` (default ``pretrained/<name>``)."""
        folder = f"pretrained/{name}" if folder is None else folder
        self._check(name, package, description, folder)
        if name in self.table:
            other = self.table[name]
            raise PluginError(
                f"pretrained model '{name}' is registered twice: by plugin '{other.plugin}' "
                f"(package {other.package}) and by plugin '{self.plugin}' (package {package}); "
                "rename one of them"
            )
        self.table[name] = PretrainedModel(name, package, folder, description, self.plugin,
                                           self.distribution)

    def _check(self, name: Any, package: Any, description: Any, folder: Any) -> None:
        where = f"plugin '{self.plugin}' registered pretrained model {name!r}"
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            raise PluginError(f"{where}; name it in lower-kebab case as <domain-task>-<method>, "
                              "e.g. 'star-easy-loflexmdm'")
        if not isinstance(package, str) or not package:
            raise PluginError(f"{where} with package {package!r}; pass the importable package "
                              "holding the folder, e.g. package=__package__")
        if not isinstance(description, str) or not description.strip() or "\n" in description:
            raise PluginError(f"{where} without a one-line description; pass description='...'")
        if not _relative_folder(folder):
            raise PluginError(f"{where} with folder {folder!r}; give a relative path inside the "
                              "package such as 'pretrained/<name>'")


def _relative_folder(folder: Any) -> bool:
    """Whether ``folder`` is a relative POSIX path that stays inside the package."""
    if not isinstance(folder, str) or not folder or "\\" in folder:
        return False
    path = PurePosixPath(folder)
    return not path.is_absolute() and ".." not in path.parts and bool(path.parts)


def available() -> dict[str, PretrainedModel]:
    """Return every pretrained model the loaded plugins register, by name.

    A plugin whose hook raises is skipped with a warning (see :mod:`loflex.extension.plugins`).

    Raises:
        PluginError: a registration is malformed or a name is registered twice.
    """
    pm = plugins.get_plugin_manager()
    table: dict[str, PretrainedModel] = {}
    for impl in pm.hook.register_pretrained.get_hookimpls():
        plugin = impl.plugin_name
        dist = plugins.distributions.get(plugin, "unknown distribution")
        kwargs = {"register": _Registrar(table, plugin, dist)} if "register" in impl.argnames \
            else {}
        try:
            impl.function(**kwargs)
        except PluginError:
            raise
        except Exception as exc:  # one broken plugin must not hide the others
            plugins.record_failure(plugin, dist, f"hook register_pretrained raised "
                                                 f"{type(exc).__name__}: {exc}")
    return table


def shipped(reference: str | Path) -> PretrainedModel | None:
    """Return the pretrained model ``reference`` names, or None.

    An existing path wins: names are looked up only when no file or folder of that name
    exists (relative to the current directory).
    """
    if os.path.lexists(reference):
        return None
    return available().get(str(reference))


def locate(reference: str | Path) -> Path:
    """Return the folder ``reference`` means: an existing path, else a checked model folder.

    Raises:
        CheckpointError: neither a path nor a registered name (lists the names), or the
            named model is damaged.
    """
    model = shipped(reference)
    if model is not None:
        return check(model)
    if not os.path.lexists(reference):
        names = ", ".join(sorted(available()))
        raise CheckpointError(
            f"'{reference}' does not exist; pass a run directory or a checkpoint directory, or "
            f"a pretrained model name ({'installed: ' + names if names else 'none installed'})"
        )
    return Path(reference)


def load_checkpoint(reference: str | Path) -> ckpt.Checkpoint:
    """Load the checkpoint of a run directory, checkpoint directory or pretrained model name.

    Raises:
        CheckpointError: as :func:`locate` and :func:`loflex.training.checkpoint.load`; for a
            pretrained model the message names the model and its package.
    """
    model = shipped(reference)
    if model is None:
        return ckpt.load(locate(reference))
    folder = check(model)
    try:
        return ckpt.load(folder)
    except CheckpointError as exc:
        raise CheckpointError(f"pretrained model '{model.name}' ({model.origin}): "
                              f"{exc.message}") from None


def check(model: PretrainedModel) -> Path:
    """Return the model's folder after checking its files without loading the weights.

    Raises:
        CheckpointError: a file is missing or corrupt, or weights are stored in a dtype other
            than fp16, bf16 or fp32; one line naming the model and its package.
    """
    folder = model.path()
    if not folder.is_dir():
        raise _damaged(model, f"its folder '{model.folder}' is missing from the package")
    for name in REQUIRED_FILES:
        if not (folder / name).is_file():
            raise _damaged(model, f"{name} is missing")
    for name in ("run.json", "state.json"):
        try:
            if not isinstance(json.loads((folder / name).read_text(encoding="utf-8")), dict):
                raise ValueError("not a JSON object")
        except (ValueError, UnicodeDecodeError, OSError) as exc:
            raise _damaged(model, f"{name} is corrupt ({exc})") from None
    for name in WEIGHT_FILES:
        if (folder / name).exists():
            _check_weight_file(model, folder / name)
    return folder


def _check_weight_file(model: PretrainedModel, path: Path) -> None:
    try:
        header = read_header(path)
    except (ValueError, OSError) as exc:
        raise _damaged(model, f"{path.name} is corrupt ({exc})") from None
    for tensor, info in header.items():
        if info["dtype"] not in SAFETENSORS_DTYPES:
            raise CheckpointError(
                f"pretrained model '{model.name}' ({model.origin}) stores '{tensor}' in "
                f"{path.name} as {info['dtype']}; loflex loads F16, BF16 or F32 weights only "
                "(write the folder with loflex.extension.pretrained.pack)"
            )


def _damaged(model: PretrainedModel, problem: str) -> CheckpointError:
    return CheckpointError(f"pretrained model '{model.name}' ({model.origin}) is damaged: "
                           f"{problem}; reinstall {model.distribution}")


def read_header(path: Path) -> dict[str, dict]:
    """Return the tensor table of a safetensors file without reading the tensors.

    Returns:
        ``{tensor name: {"dtype": "F16" | ..., "shape": [...], "data_offsets": [begin, end]}}``.

    Raises:
        ValueError: the file is shorter than its header says, or the header is not JSON.
    """
    size = path.stat().st_size
    with open(path, "rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise ValueError(f"{size} bytes, shorter than a safetensors header")
        length = int.from_bytes(prefix, "little")
        if length > min(size - 8, HEADER_LIMIT):
            raise ValueError(f"its header claims {length} bytes but the file has {size}")
        header = json.loads(handle.read(length))
    if not isinstance(header, dict):
        raise ValueError("the header is not a JSON object")
    header.pop("__metadata__", None)
    try:
        end = max((int(info["data_offsets"][1]) for info in header.values()), default=0)
        for info in header.values():
            info["dtype"], info["shape"] = str(info["dtype"]), [int(n) for n in info["shape"]]
    except (KeyError, IndexError, TypeError) as exc:
        raise ValueError(f"malformed tensor entry ({type(exc).__name__}: {exc})") from None
    if 8 + length + end > size:
        raise ValueError(f"truncated: {size} bytes where the header needs {8 + length + end}")
    return header


def count_parameters(path: Path) -> int:
    """Return the number of values stored in a safetensors file (from its header)."""
    return sum(math.prod(info["shape"]) for info in read_header(path).values())


def read_card_metrics(folder: Path) -> dict[str, float]:
    """Return the headline metrics of ``card.json`` (all its metrics when it names none;
    empty without the file).

    Raises:
        ValueError: card.json is not JSON or its metrics are not a table of numbers.
    """
    path = folder / "card.json"
    if not path.exists():
        return {}
    card = json.loads(path.read_text(encoding="utf-8"))
    metrics = card.get("metrics", {}) if isinstance(card, dict) else None
    if not isinstance(metrics, dict) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in metrics.values()):
        raise ValueError("card.json: 'metrics' must be a table of numbers")
    headline = card.get("headline", list(metrics))
    if not isinstance(headline, list) or not set(headline) <= set(metrics):
        raise ValueError("card.json: 'headline' must list names of its metrics")
    return {str(k): float(metrics[k]) for k in headline}


def describe(model: PretrainedModel) -> dict[str, Any]:
    """Return what ``loflex models`` shows: origin, domain, order, size and metrics.

    Raises:
        CheckpointError: the model's files are missing or corrupt (see :func:`check`).
    """
    folder = check(model)
    run = json.loads((folder / "run.json").read_text(encoding="utf-8"))
    try:
        metrics = read_card_metrics(folder)
    except ValueError as exc:
        raise _damaged(model, str(exc)) from None
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    return {"name": model.name, "description": model.description, "package": model.package,
            "distribution": model.distribution, "domain": _component(run, "domain"),
            "order": _component(run, "order"), "generator": _component(run, "generator"),
            "parameters": count_parameters(folder / "model.safetensors"),
            "megabytes": round(size / 1e6, 3), "metrics": metrics, "path": str(folder)}


def _component(run: dict, section: str) -> str:
    spec = run.get(section)
    return str(spec.get("name", "?")) if isinstance(spec, dict) else "?"


def pack(source: str | Path, destination: str | Path, *, dtype: str = "fp16") -> Path:
    """Write the checkpoint of a run as a pretrained model folder (add ``card.md`` yourself).

    The EMA weights (the raw weights of a run without EMA) become ``model.safetensors`` in
    ``dtype``; the optimiser, data position and random states are left out.

    Args:
        source: a run directory (its latest checkpoint) or a checkpoint directory.
        destination: the new folder, e.g. ``my_package/pretrained/<name>``.
        dtype: ``fp16``, ``bf16`` or ``fp32``.

    Raises:
        ConfigError: unknown dtype or an existing destination; CheckpointError: see
            :func:`loflex.training.checkpoint.load` (and values too large for fp16).
    """
    if dtype not in PACK_DTYPES:
        raise ConfigError(f"dtype '{dtype}' is not one of {', '.join(PACK_DTYPES)}")
    destination = Path(destination)
    if os.path.lexists(destination):
        raise ConfigError(f"'{destination}' already exists; pack into a new folder")
    saved = ckpt.load(source)
    weights = {**saved.model, **(saved.ema or {})}
    weights = {k: v.to(PACK_DTYPES[dtype]) if v.is_floating_point() else v
               for k, v in weights.items()}
    state = {key: saved.state[key] for key in KEPT_STATE if key in saved.state}
    folder = ckpt.save(destination, run=saved.run, state=state, model=weights)
    for path in folder.iterdir():
        os.chmod(path, 0o644)  # package data: readable by every user of an installation
    return folder
