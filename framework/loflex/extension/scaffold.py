"""``loflex new plugin``: write a plugin package that installs, registers and passes its checks.

:func:`write_plugin` writes, for a lower-kebab NAME and a kind (``order``, ``generator``
or ``domain``)::

    NAME/
      pyproject.toml            distribution loflex-NAME, entry point NAME
      README.md
      loflex_NAME/__init__.py
      loflex_NAME/component.py  the component class, named NAME
      loflex_NAME/plugin.py     the hook implementation registering it
      tests/test_NAME.py        the loflex.extension.testing contract checks and the entry point

The component is small but complete; replace its body with your own.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from string import Template

from loflex.errors import ConfigError

KINDS = ("order", "generator", "domain")
NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")

PYPROJECT = """\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "loflex-$name"
version = "0.1.0"
description = "A loflex $kind plugin: $name"
requires-python = ">=3.11"
dependencies = ["loflex"]

[project.optional-dependencies]
test = ["pytest"]

[project.entry-points.loflex]
$name = "$package.plugin"

[tool.setuptools.packages.find]
include = ["$package*"]

[tool.ruff]
line-length = 100

[tool.ruff.lint]
select = ["E", "F", "W", "I", "B", "UP"]
"""

README = """\
# loflex-$name

A loflex plugin that registers the $kind `$name`.

```bash
pip install -e .            # then `loflex components` lists $name
python -m pytest tests      # the loflex.extension.testing contract checks
ruff check .                # lint (configured in pyproject.toml)
```

Replace the body of `$package/component.py` with your own; the tests check that it
still keeps the loflex contract.
"""

PLUGIN = """\
\"\"\"The module the entry point names: it registers the $kind `$name`.\"\"\"

from loflex import hookimpl

from $package.component import $cls


@hookimpl
def $hook(register):
    register($cls)
"""

ORDER = """\
\"\"\"The order dynamics `$name`.

A fixed order in the Kumaraswamy family: later target tokens are inserted first.
\"\"\"

import loflex
import torch
from pydantic import Field


class $cls(loflex.KumaraswamyOrder):
    \"\"\"Insert later target tokens first: b_in = exp(sharpness (r - 1/2)), b_um = 1.

    r in [0, 1] is the relative position of a free token in its row; with a = 1,
    E[T_in] = 1 / (1 + b_in), so a larger b_in means an earlier insertion.
    \"\"\"

    name = "$name"
    a = 1.0

    class Options(loflex.Options):
        sharpness: float = Field(4.0, ge=0, description="How strongly later tokens go first.")

    def forward(self, batch: loflex.Batch, t: torch.Tensor) -> loflex.TokenRates:
        \"\"\"Return b_in and b_um, (B, L) each, for the clean batch at times t (B,).\"\"\"
        free = batch.free.float()  # (B, L)
        rank = (free.cumsum(1) - 1).clamp(min=0)  # (B, L)
        position = rank / (free.sum(1, keepdim=True) - 1).clamp(min=1)  # (B, L) in [0, 1]
        b_in = torch.exp(self.options.sharpness * (position - 0.5)) * free + (1 - free)
        return loflex.TokenRates(b_in=b_in, b_um=torch.ones_like(b_in))
"""

GENERATOR = """\
\"\"\"The generator `$name`.

Per-slot predictions from the token, the time and the mean of the row.
\"\"\"

import loflex
import torch
from pydantic import Field
from torch import nn
from torch.nn import functional as F


class Trunk(nn.Module):
    \"\"\"Token embedding + time + the mean of the row's real slots, then an MLP.

    It satisfies loflex.Trunk (width, cond_dim, TrunkOutput), so a learned order can
    share it (kumaraswamy with backbone = "shared").
    \"\"\"

    def __init__(self, vocab_size: int, width: int, cond_dim: int):
        super().__init__()
        self.width, self.cond_dim = width, cond_dim
        self.embed = nn.Embedding(vocab_size, width)
        self.time = nn.Sequential(nn.Linear(1, cond_dim), nn.SiLU(), nn.Linear(cond_dim, width))
        self.cond = nn.Linear(1, cond_dim)
        self.mlp = nn.Sequential(nn.Linear(2 * width, width), nn.GELU(), nn.Linear(width, width))

    def forward(self, x, t, real) -> loflex.TrunkOutput:
        \"\"\"x (B, L), t (B,), real (B, L) -> hidden (B, L, width), cond (B, cond_dim).\"\"\"
        h = self.embed(x) + self.time(t.float()[:, None])[:, None]  # (B, L, width)
        weights = real.float()[..., None]  # (B, L, 1)
        row = (h * weights).sum(1, keepdim=True) / weights.sum(1, keepdim=True).clamp(min=1)
        hidden = self.mlp(torch.cat([h, row.expand_as(h)], dim=-1))  # (B, L, width)
        return loflex.TrunkOutput(hidden=hidden, cond=self.cond(t.float()[:, None]))


class $cls(loflex.Generator):
    \"\"\"Logits (B, L, V) and non-negative rate multipliers (B, L) at every slot.\"\"\"

    name = "$name"

    class Options(loflex.Options):
        width: int = Field(64, gt=0, description="Hidden width.")
        cond_dim: int = Field(32, gt=0, description="Width of the time condition.")

    def __init__(self, options, *, vocab_size: int, max_length: int, learn_unmask: bool = False):
        super().__init__(options, vocab_size=vocab_size, max_length=max_length,
                         learn_unmask=learn_unmask)
        self.trunk = Trunk(vocab_size, options.width, options.cond_dim)
        self.logits = nn.Linear(options.width, vocab_size)
        self.rates = nn.Linear(options.width, 2)

    def forward(self, x_t, t, real) -> loflex.Prediction:
        \"\"\"x_t (B, L), t (B,), real (B, L) -> a loflex.Prediction.\"\"\"
        hidden = self.trunk(x_t, t, real).hidden  # (B, L, width)
        rates = F.softplus(self.rates(hidden))  # (B, L, 2)
        return loflex.Prediction(logits=self.logits(hidden), insert_multiplier=rates[..., 0],
                                 unmask_rate=rates[..., 1] if self.learn_unmask else None)
"""

DOMAIN = """\
\"\"\"The domain `$name`.

Ascending runs of digits, scored by the share of samples that ascend.
\"\"\"

import random
from collections.abc import Sequence

import loflex
from pydantic import Field

DIGITS = [str(d) for d in range(10)]


class $cls(loflex.Domain):
    \"\"\"Targets such as `2 3 4 5`: a run of 2 to `max_length` ascending digits.\"\"\"

    name = "$name"
    headline_metric = "ascending"

    class Options(loflex.Options):
        size: int = Field(500, gt=0, description="Training examples.")
        max_length: int = Field(6, ge=2, le=10, description="Longest run.")
        seed: int = Field(0, description="Seed of the data.")

    def __init__(self, options, *, state=None, cache_dir=None):
        super().__init__(options, state=state, cache_dir=cache_dir)
        self.vocab = (loflex.Vocabulary.from_json(state["vocab"]) if state
                      else loflex.Vocabulary(DIGITS))
        sizes = {"train": options.size, "valid": 50, "test": 50}
        self.data = {split: self._make(count, options.seed * 3 + i)
                     for i, (split, count) in enumerate(sizes.items())}

    def _make(self, count: int, seed: int) -> list[loflex.Example]:
        rng = random.Random(seed)
        runs = []
        for _ in range(count):
            length = rng.randint(2, self.options.max_length)
            start = rng.randint(0, 10 - length)
            runs.append(loflex.Example(target=self.encode(" ".join(DIGITS[start:start + length]))))
        return runs

    @property
    def max_target_length(self) -> int:
        return self.options.max_length

    def examples(self, split: str) -> Sequence[loflex.Example]:
        return self.data[split]

    def tokenize(self, text: str) -> list[str]:
        return text.split()

    def detokenize(self, tokens: Sequence[str]) -> str:
        return " ".join(tokens)

    def metrics(self, samples: Sequence[loflex.Generated]) -> dict[str, float]:
        \"\"\"`ascending`: the share of samples of at least two strictly ascending digits.\"\"\"
        hits = sum(ascends(list(s.tokens)) for s in samples)
        return {"ascending": hits / max(1, len(samples))}


def ascends(tokens: list[int]) -> bool:
    \"\"\"Whether ``tokens`` holds at least two ids, each larger than the one before.\"\"\"
    return len(tokens) >= 2 and all(tokens[i] < tokens[i + 1] for i in range(len(tokens) - 1))
"""

TESTS = {
    "order": """\
        def test_contract():
            check_order_dynamics($cls($cls.Options()))
    """,
    "generator": """\
        def test_contract():
            options = $cls.Options(width=16, cond_dim=8)
            check_generator($cls(options, vocab_size=12, max_length=16))
    """,
    "domain": """\
        def test_contract():
            check_domain($cls($cls.Options(size=50)))
    """,
}

TEST_FILE = """\
\"\"\"The loflex contract checks of the $kind `$name`, and its entry point.\"\"\"

import loflex
from loflex.extension.testing import $check

from $package.component import $cls


$test

def test_registered_through_its_entry_point():
    registered = loflex.components(loflex.$base)
    assert registered["$name"] is $cls
"""

DETAILS = {
    "order": ("register_order_dynamics", "check_order_dynamics", "OrderDynamics", ORDER),
    "generator": ("register_generators", "check_generator", "Generator", GENERATOR),
    "domain": ("register_domains", "check_domain", "Domain", DOMAIN),
}


def names(name: str) -> dict[str, str]:
    """Return the names derived from ``name``: package, class and distribution.

    Raises:
        ConfigError: ``name`` is not lower-kebab (e.g. ``my-order``).
    """
    if not NAME.match(name):
        raise ConfigError(f"plugin name '{name}' is not lower-kebab; use lower-case letters, "
                          "digits and single dashes, starting with a letter (e.g. my-order)")
    package = "loflex_" + name.replace("-", "_")
    cls = "".join(part.capitalize() for part in name.split("-"))
    return {"name": name, "package": package, "cls": cls, "distribution": f"loflex-{name}"}


def plugin_files(name: str, kind: str) -> dict[str, str]:
    """Return relative path -> text of every file of a new ``kind`` plugin called ``name``.

    Raises:
        ConfigError: an unknown kind or a name that is not lower-kebab.
    """
    if kind not in KINDS:
        raise ConfigError(f"unknown plugin kind '{kind}'; use one of {', '.join(KINDS)}")
    fields = names(name)
    hook, check, base, component = DETAILS[kind]
    fields.update(kind=kind, hook=hook, check=check, base=base)
    fields["test"] = Template(_dedent(TESTS[kind])).substitute(fields)
    package = fields["package"]
    templates = {
        "pyproject.toml": PYPROJECT,
        "README.md": README,
        f"{package}/__init__.py": f'"""The loflex {kind} plugin `{name}`."""\n',
        f"{package}/component.py": component,
        f"{package}/plugin.py": PLUGIN,
        f"tests/test_{package.removeprefix('loflex_')}.py": TEST_FILE,
    }
    return {path: Template(text).substitute(fields) for path, text in templates.items()}


def _dedent(text: str) -> str:
    return textwrap.dedent(text).strip("\n") + "\n"


def write_plugin(name: str, kind: str, folder: Path, force: bool = False) -> list[Path]:
    """Write the plugin package into ``folder``; return the files written.

    Raises:
        ConfigError: bad name or kind, or ``folder`` holds files and ``force`` is not set.
    """
    files = plugin_files(name, kind)
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()) and not force:
        raise ConfigError(f"'{folder}' already holds files; choose another folder with -o or "
                          "pass --force to write into it")
    written = []
    for relative, text in files.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
