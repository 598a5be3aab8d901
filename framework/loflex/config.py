"""Run configuration: pydantic models, TOML loading and ``--set`` overrides."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from loflex.contracts.options import ComponentSpec, Options
from loflex.errors import ConfigError
from loflex.extension import registry

__all__ = ["ComponentSpec", "Options", "Run", "SampleConfig", "TrainConfig", "load_run",
           "validate_run"]


class TrainConfig(Options):
    """Optimisation, logging and checkpointing of ``loflex train``."""

    steps: int = Field(2000, gt=0, description="Optimiser steps.")
    batch_size: int = Field(64, gt=0, description="Sequences per step (per process).")
    lr: float = Field(1e-3, gt=0, description="Peak learning rate.")
    lr_schedule: Literal["constant", "cosine"] = Field(
        "cosine", description="After warm-up: constant, or cosine decay to min_lr."
    )
    warmup_steps: int = Field(100, ge=0, description="Linear warm-up steps.")
    min_lr: float = Field(1e-5, ge=0, description="Final learning rate of the cosine schedule.")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay (weights only).")
    grad_clip: float = Field(1.0, ge=0, description="Gradient-norm clip (0 = off).")
    ema: float = Field(0.999, ge=0, lt=1, description="EMA decay of the weights (0 = off).")
    loss_normalisation: Literal["per-sequence", "flexmdm"] = Field(
        "per-sequence",
        description="per-sequence: LoFlexMDM (unmask / #masked, insertion / max length); "
        "flexmdm: the FlexMDM baseline's global B x L normaliser with 1e-6 clamps.",
    )
    time_sampling: Literal["uniform", "hazard"] = Field(
        "uniform",
        description="uniform: stratified t as in the reference; hazard: t drawn in proportion "
        "to h(t) with importance weights (same objective, lower gradient variance).",
    )
    time_weighting: Literal["elbo", "flat"] = Field(
        "elbo",
        description="elbo: the method's weighting (rate-weighted, h(t) grows without bound as "
        "t -> 1); flat: every sequence's loss divided by h(t), so each time counts alike. "
        "Same minimiser for the generator, far lower gradient variance near t = 1.",
    )
    log_every: int = Field(10, gt=0, description="Steps between metrics.jsonl lines.")
    eval_every: int = Field(250, ge=0, description="Steps between validation losses (0 = off).")
    eval_batches: int = Field(4, gt=0, description="Validation batches per evaluation.")
    sample_every: int = Field(0, ge=0, description="Steps between sampling + metrics (0 = off).")
    sample_count: int = Field(64, gt=0, description="Samples drawn at each sample_every.")
    checkpoint_every: int = Field(500, ge=0, description="Steps between checkpoints (0 = end only).")
    keep_checkpoints: int = Field(3, gt=0, description="How many recent checkpoints to keep.")
    max_nonfinite_steps: int = Field(
        10, gt=0, description="Stop after this many consecutive non-finite steps."
    )
    time_limit_minutes: float | None = Field(
        None, gt=0, description="Stop (with a checkpoint) after this many minutes spent in "
        "optimiser steps (validation, sampling and checkpoints not counted; kept across resumes)."
    )
    budget_clock: Literal["wall", "cpu"] = Field(
        "wall", description="What time_limit_minutes counts: wall seconds of optimiser steps, "
        "or this process's CPU seconds (robust to other jobs sharing the machine)."
    )
    device: str = Field("auto", pattern=r"^(auto|cpu|mps|cuda(:[0-9]+)?)$",
                        description="'auto', 'cpu', 'mps', 'cuda' or 'cuda:N'.")
    precision: Literal["fp32", "bf16"] = Field(
        "fp32", description="fp32, or bf16 autocast on a GPU or a CPU with bf16 matrix units "
        "(elsewhere fp32).")
    compile: bool = Field(False, description="torch.compile the networks.")
    threads: int | None = Field(None, gt=0, description="torch CPU threads (default: all).")
    num_workers: int = Field(0, ge=0, description="DataLoader worker processes.")
    length_buckets: bool = Field(
        True, description="Group training examples of similar length into a batch."
    )


class SampleConfig(Options):
    """Reverse-process settings of ``loflex sample`` and of evaluation."""

    num_samples: int = Field(100, gt=0, description="How many samples to draw.")
    batch_size: int = Field(64, gt=0, description="Samples per sampler batch.")
    steps: int = Field(128, gt=0, description="Tau-leaping steps (model calls).")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus threshold (1 = off).")
    top_p_rule: Literal["inclusive", "reference"] = Field(
        "inclusive", description="inclusive: the smallest set of most likely tokens whose "
        "probability reaches top_p (the token that crosses it is kept); reference: the tokens "
        "whose cumulative probability is <= top_p, always keeping the most likely one."
    )
    top_k: int = Field(0, ge=0, description="Keep the k most likely tokens (0 = off, 1 = greedy).")
    temperature: float = Field(1.0, gt=0, description="Softmax temperature of token choice.")
    confidence: Literal["none", "top_prob", "prob_diff", "entropy"] = Field(
        "none", description="Which masked positions to reveal (the count comes from tau-leaping)."
    )
    confidence_on: Literal["probabilities", "hazard"] = Field(
        "probabilities", description="What prob_diff and entropy are computed on: the token "
        "probabilities K, or softmax(b_um h(t) K) over the vocabulary as the reference code."
    )
    max_length: int | None = Field(
        None, gt=1, description="Longest sequence (default: the domain's maximum)."
    )
    split: Literal["train", "valid", "test"] = Field(
        "test", description="Where prompts come from for conditional domains."
    )
    completion_rounds: int = Field(
        0, ge=0, le=64, description="Extra model calls after the last step that insert the "
        "generator's remaining expected count of each gap, rounded, and fill every mask "
        "by argmax, until no gap is missing a token (0 = stop at the last step, as the "
        "reference).")
    structure_rounds: int = Field(
        0, ge=0, le=64, description="Extra model calls at the end for domains that can name "
        "what a finished sample structurally lacks (e.g. a molecule fragment's unbonded "
        "attachment point): each inserts what the domain names and lets the generator fill "
        "its masks by argmax among the tokens the domain allows there (0 = off).")
    use_ema: bool = Field(True, description="Sample with the EMA weights when present.")
    precision: Literal["fp32", "bf16"] = Field(
        "fp32", description="fp32, or bf16 autocast of the networks' matrix multiplies on a "
        "GPU or a CPU with bf16 matrix units (elsewhere fp32); token and rate probabilities "
        "stay fp32. Quality figures in the docs are measured in fp32.")

    @pydantic.model_validator(mode="after")
    def _check_confidence_on(self) -> SampleConfig:
        if self.confidence_on == "hazard" and self.confidence == "top_prob":
            raise ValueError("confidence_on 'hazard' applies to prob_diff and entropy only "
                             "(top_prob ranks by max K, as the reference); use "
                             "confidence_on = 'probabilities' with top_prob")
        return self


class Run(BaseModel):
    """A full run: the three components, training, sampling and the seed."""

    model_config = ConfigDict(extra="forbid")
    domain: ComponentSpec = Field(description="The sequence domain.")
    order: ComponentSpec = Field(
        default_factory=lambda: ComponentSpec(name="kumaraswamy"), description="Order dynamics."
    )
    generator: ComponentSpec = Field(
        default_factory=lambda: ComponentSpec(name="transformer"), description="Denoiser network."
    )
    train: TrainConfig = Field(default_factory=TrainConfig)
    sample: SampleConfig = Field(default_factory=SampleConfig)
    seed: int = Field(0, ge=0, lt=2**32, description="Seed of every random draw (0 to 2**32 - 1).")


SECTIONS: dict[str, type[BaseModel]] = {"train": TrainConfig, "sample": SampleConfig}


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``a.b.c=value`` into a key path and a TOML-parsed value (else a string)."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' has no '='; write it as section.key=value")
    key, raw = text.split("=", 1)
    path = [part for part in key.strip().split(".")]
    if not all(path):
        raise ConfigError(f"override '{text}' has an empty key part; write it as section.key=value")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return path, value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return ``data`` with every ``--set`` override applied (nested dicts created)."""
    for text in overrides:
        path, value = parse_override(text)
        node = data
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override '{text}': '{part}' is a value, not a section")
            node = child
        node[path[-1]] = value
    return data


def read_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML run file, with a clear error for a missing file or a syntax error."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"run file '{path}' does not exist; check the path") from None
    except UnicodeDecodeError:
        raise ConfigError(f"run file '{path}' is not UTF-8 text; save it as UTF-8 TOML") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"run file '{path}' is not valid TOML: {exc}; fix the syntax") from None


def validate_run(data: dict[str, Any]) -> Run:
    """Validate a run dictionary: its settings, then its components against the registry.

    The settings are checked by pydantic (errors become one ConfigError); then
    :func:`loflex.extension.registry.validate_components` checks every component's name and options
    (normalising them to their full form) and that the order and the domain fit together.
    """
    if not isinstance(data, dict):
        raise ConfigError("a run config must be a table of sections (domain, order, ...)")
    for section, default in (("order", "kumaraswamy"), ("generator", "transformer")):
        if isinstance(data.get(section), dict) and "name" not in data[section]:
            data[section] = {"name": default, **data[section]}
    if "domain" not in data:
        raise ConfigError(
            "the run names no domain; add [domain] name = '...' or --set domain.name=NAME "
            "(`loflex components` lists them)"
        )
    try:
        run = Run.model_validate(data)
    except pydantic.ValidationError as exc:
        raise settings_error(exc) from None
    registry.validate_components(run)
    return run


def settings_error(exc: pydantic.ValidationError) -> ConfigError:
    """Turn a run's pydantic error into a ConfigError; an unknown key lists the valid ones."""
    errors = exc.errors()
    lines = [registry.format_error(err) for err in errors]
    first = errors[0]
    if first["type"] == "extra_forbidden" and len(first["loc"]) == 2:
        section = first["loc"][0]
        model = SECTIONS.get(section)
        if model is not None:
            lines[0] += f"; the {section} settings are {', '.join(model.model_fields)}"
    return ConfigError(f"invalid run config: {lines[0]}", details=lines[1:])


def load_run(path: str | Path | None = None, overrides: list[str] | None = None) -> Run:
    """Load a run from an optional TOML file plus ``--set`` overrides, validated.

    An override that switches a component to another name (``--set order.name=uniform``)
    drops the file's options for the component it replaces; options set with ``--set``
    apply to the new one.
    """
    data = read_toml(path) if path is not None else {}
    for text in overrides or []:
        keys, value = parse_override(text)
        if len(keys) == 2 and keys[1] == "name" and isinstance(data.get(keys[0]), dict):
            if data[keys[0]].get("name") != value:
                data[keys[0]].pop("options", None)
    return validate_run(apply_overrides(data, overrides or []))


def run_to_toml(run: Run) -> str:
    """Serialise a run as TOML (the ``config.toml`` of a run directory)."""
    return dumps_toml(run.model_dump(mode="json", exclude_none=True))


def dumps_toml(data: dict[str, Any], prefix: str = "") -> str:
    """Write a nested dict of TOML-able scalars and lists as TOML text."""
    scalars = {k: v for k, v in data.items() if not isinstance(v, dict) and v is not None}
    tables = {k: v for k, v in data.items() if isinstance(v, dict)}
    lines = [f"{key} = {_toml_value(value)}" for key, value in scalars.items()]
    text = ""
    if prefix and (scalars or not tables):
        text += f"[{prefix}]\n"
    text += "".join(line + "\n" for line in lines)
    for key, value in tables.items():
        name = f"{prefix}.{key}" if prefix else key
        text += "\n" + dumps_toml(value, name)
    return text


def _toml_string(text: str) -> str:
    """Quote ``text`` as a TOML basic string (any Unicode text, control characters escaped)."""
    out = []
    for char in text:
        code = ord(char)
        if 0xD800 <= code <= 0xDFFF:
            raise ConfigError(f"the setting {text!r} holds a lone surrogate character, which no "
                              "TOML file can store; use valid Unicode text")
        if char in '"\\':
            out.append("\\" + char)
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\u{code:04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")
