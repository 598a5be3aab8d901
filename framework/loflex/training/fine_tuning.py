"""Fine-tuning: a new run that starts from a saved model's weights (``--init``).

The architecture (domain, generator, order and their options) comes from the model; a
run file and overrides may change training, data options and the sampler. A model whose
order has no weights (e.g. ``uniform``) may start a run with any order: only the
generator's weights carry over.
"""

from __future__ import annotations

from pathlib import Path

from loflex.config import apply_overrides, read_toml, validate_run
from loflex.errors import ConfigError
from loflex.extension.pretrained import load_checkpoint
from loflex.sampling.inference import starting_weights


def fine_tuning(reference: str, run_file: Path | None, overrides: list[str]):
    """Return the checkpoint a ``--init`` run starts from and the run it trains.

    Domain, generator, order and sampler settings come from the model; the run file and
    the overrides are applied on top. The generator, the order and the domain name must
    stay the model's; domain options (e.g. another data file) may change, the vocabulary
    is the model's.

    Returns:
        ``(checkpoint, run)``: the checkpoint's ``model`` holds the starting weights (its
        EMA weights where it has them), fp32.

    Raises:
        ConfigError: the run changes the architecture (names the setting and both values).
    """
    saved = starting_checkpoint(reference)
    model_run = validate_run(dict(saved.run))
    stored = model_run.model_dump(mode="json")
    data = {key: stored[key] for key in ("domain", "generator", "order", "sample")}
    data = merged(data, read_toml(run_file) if run_file is not None else {})
    run = validate_run(apply_overrides(data, overrides))
    fixed_order = not any(key.startswith("order.") for key in saved.model)
    difference = next(architecture_differences(run, model_run, fixed_order), None)
    if difference is not None:
        key, ours, theirs = difference
        raise ConfigError(f"--init {reference}: {key} is {ours!r} in the run config but "
                          f"{theirs!r} in the model; the architecture comes from the model, so "
                          "leave it out of the run file and --set")
    return saved, run


def starting_checkpoint(reference: str):
    """Return the checkpoint of ``reference`` as a fine-tuning run starts from it.

    Its ``model`` holds the starting weights (the EMA weights where it has them), fp32.
    """
    saved = load_checkpoint(reference)
    saved.model, saved.ema = starting_weights(saved), None
    return saved


def merged(base: dict, top: dict) -> dict:
    """Return ``base`` with ``top`` laid over it, tables merged key by key."""
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def architecture_differences(run, model_run, fixed_order: bool = False):
    """Yield ``(setting, run's value, model's value)`` where the run leaves the architecture.

    With ``fixed_order`` (the model's order has no weights, e.g. ``uniform``) the run may
    choose any order: only the generator's weights are carried over, so a FlexMDM model
    can start a LoFlexMDM run whose auxiliary network begins fresh.
    """
    if run.domain.name != model_run.domain.name:
        yield "domain.name", run.domain.name, model_run.domain.name
    for section in ("generator",) if fixed_order else ("generator", "order"):
        ours, theirs = getattr(run, section), getattr(model_run, section)
        if ours.name != theirs.name:
            yield f"{section}.name", ours.name, theirs.name
            continue
        for key in sorted(set(ours.options) | set(theirs.options)):
            if ours.options.get(key) != theirs.options.get(key):
                yield f"{section}.options.{key}", ours.options.get(key), theirs.options.get(key)
