"""Test helpers for loflex and plugin authors.

- :func:`registered` registers an in-test plugin for the duration of a ``with`` block.
- :func:`check_domain`, :func:`check_generator`, :func:`check_order_dynamics` are the
  contract checks every plugin's tests should call.
- :class:`ToyDomain` is a tiny conditional domain (reverse a digit string) that needs
  neither rdkit nor networkx; :class:`ToyPlugin` registers it.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
from collections.abc import Iterator, Sequence

import torch
from pydantic import Field

from loflex import plugins, registry
from loflex.batch import collate
from loflex.config import Options
from loflex.domain import SPLITS, Domain, Example, Generated
from loflex.generator import Generator
from loflex.hookspecs import hookimpl
from loflex.order import OrderDynamics
from loflex.vocab import BOS, EOS, MASK, PAD, SPECIAL_TOKENS, Vocabulary


@contextlib.contextmanager
def registered(plugin: object, name: str | None = None, *, check: bool = True) -> Iterator[object]:
    """Register ``plugin`` (a module or object with hook implementations) for a block.

    With ``check`` (the default) its component hooks run at once and a problem (a hook
    that raises, an invalid class, a name already taken) raises :class:`PluginError`
    here, instead of the warning and skip an installed plugin gets.

    Example::

        with registered(MyPlugin()):
            assert "my-order" in components(OrderDynamics)
    """
    pm = plugins.get_plugin_manager()
    name = name or f"test-plugin-{id(plugin)}"
    pm.register(plugin, name=name)
    plugins.distributions[name] = "test"
    try:
        plugins.check_hooks(pm, name)
        if check:
            registry.check_plugin(name)
        yield plugin
    finally:
        if pm.has_plugin(name):
            pm.unregister(name=name)
        plugins.distributions.pop(name, None)
        plugins.forget(name)


class ToyDomain(Domain):
    """Reverse a string of digits: prompt ``3 1 4``, target ``4 1 3``."""

    name = "toy"
    headline_metric = "exact_match"

    class Options(Options):
        size: int = Field(512, gt=0, description="Training examples.")
        min_length: int = Field(2, gt=0, description="Shortest string.")
        max_length: int = Field(6, gt=0, description="Longest string.")
        seed: int = Field(0, description="Data seed.")

    def __init__(self, options: Options, *, state: dict | None = None, cache_dir=None):
        super().__init__(options, state=state, cache_dir=cache_dir)
        self.vocab = Vocabulary([str(d) for d in range(10)])
        sizes = {"train": options.size, "valid": 32, "test": 32}
        self._data = {split: self._make(sizes[split], options.seed * 10 + i)
                      for i, split in enumerate(SPLITS)}

    def _make(self, count: int, seed: int) -> list[Example]:
        rng = random.Random(seed)
        out = []
        for _ in range(count):
            n = rng.randint(self.options.min_length, self.options.max_length)
            digits = [rng.randrange(10) for _ in range(n)]
            ids = self.vocab.encode([str(d) for d in digits])
            out.append(Example(target=ids[::-1], prompt=ids))
        return out

    @property
    def max_prompt_length(self) -> int:
        return self.options.max_length

    @property
    def max_target_length(self) -> int:
        return self.options.max_length

    def examples(self, split: str) -> Sequence[Example]:
        return self._data[split]

    def tokenize(self, text: str) -> list[str]:
        return text.split()

    def detokenize(self, tokens: Sequence[str]) -> str:
        return " ".join(tokens)

    def metrics(self, samples: Sequence[Generated]) -> dict[str, float]:
        refs = [s for s in samples if s.reference is not None]
        if not refs:
            return {}
        exact = sum(s.tokens == list(s.reference.target) for s in refs) / len(refs)
        return {"exact_match": exact}


class ToyPlugin:
    """Registers :class:`ToyDomain`."""

    @hookimpl
    def register_domains(self, register):
        register(ToyDomain)


# -- contract checks ------------------------------------------------------------------


def check_domain(domain: Domain, splits: Sequence[str] = ("train",), n: int = 20) -> None:
    """Assert that ``domain`` honours the Domain contract on up to ``n`` examples per split."""
    vocab = domain.vocab
    assert vocab.itos[: len(SPECIAL_TOKENS)] == list(SPECIAL_TOKENS), "specials must come first"
    state = json.loads(json.dumps(domain.state_dict()))
    restored = type(domain)(domain.options, state=state, cache_dir=domain.cache_dir)
    assert restored.vocab.itos == vocab.itos, "state_dict() must restore the same vocabulary"
    for split in splits:
        examples = domain.examples(split)
        assert len(examples) > 0, f"split {split!r} is empty"
        for example in [examples[i] for i in range(min(n, len(examples)))]:
            _check_example(domain, example)
    sample = [Generated(tokens=list(ex.target), prompt=list(ex.prompt), reference=ex)
              for ex in [domain.examples(splits[0])[i] for i in range(min(n, 4))]]
    metrics = domain.metrics(sample)
    assert isinstance(metrics, dict), "metrics() must return a dict"
    for key, value in metrics.items():
        assert isinstance(value, (int, float)), f"metric {key!r} must be a number"


def _check_example(domain: Domain, ex: Example) -> None:
    special = {PAD, MASK, BOS, EOS}
    for part in (ex.prompt, ex.target):
        assert all(isinstance(i, int) for i in part), "ids must be ints"
        assert all(0 <= i < len(domain.vocab) for i in part), "ids must be in the vocabulary"
        assert not special & set(part), "examples must not contain special tokens"
    assert len(ex.prompt) <= domain.max_prompt_length, "prompt longer than max_prompt_length"
    assert len(ex.target) <= domain.max_target_length, "target longer than max_target_length"
    if ex.order_hint is not None:
        assert len(ex.order_hint) == len(ex.target), "order_hint needs one value per target token"
    assert domain.encode(domain.to_text(ex.target)) == list(ex.target), "text round trip failed"


def check_generator(generator: Generator, batch_size: int = 3, length: int = 7) -> None:
    """Assert the Generator contract: shapes, positive rates, padding invariance."""
    v = generator.vocab_size
    x = torch.randint(4, v, (batch_size, length))
    x[:, -1] = EOS
    real = torch.ones_like(x, dtype=torch.bool)
    x[0, length // 2:] = PAD
    x[0, length // 2 - 1] = EOS
    real[0, length // 2:] = False
    t = torch.rand(batch_size)
    generator.eval()
    with torch.no_grad():
        pred = generator(x, t, real)
        assert pred.logits.shape == (batch_size, length, v), "logits must be (B, L, V)"
        assert pred.insert_rate.shape == (batch_size, length), "insert_rate must be (B, L)"
        assert (pred.insert_rate[real] >= 0).all(), "insertion rates must be non-negative"
        assert torch.isfinite(pred.logits[real]).all(), "logits must be finite at real slots"
        if generator.learn_unmask:
            assert pred.unmask_rate is not None, "learn_unmask needs unmask_rate"
        wider = torch.cat([x, torch.full((batch_size, 3), PAD)], 1)
        wider_real = torch.cat([real, torch.zeros(batch_size, 3, dtype=torch.bool)], 1)
        pred2 = generator(wider, t, wider_real)
        assert torch.allclose(pred.logits[real], pred2.logits[:, :length][real], atol=1e-4), \
            "outputs must not depend on extra padding"


def check_order_dynamics(order: OrderDynamics, examples: Sequence[Example] | None = None,
                         draws: int = 4000) -> None:
    """Assert the OrderDynamics contract, including Monte-Carlo agreement of the states.

    The state frequencies of ``draws`` event-time samples must match the closed-form
    state probabilities within five binomial standard errors.
    """
    examples = examples or [Example(target=[4, 5, 6, 7], prompt=[8, 9], order_hint=[1, 2, 2, 1]),
                            Example(target=[5, 6], order_hint=[0, 0])]
    batch = collate(examples)
    t = torch.tensor([0.3, 0.7], dtype=torch.float64)[: len(examples)]
    with torch.no_grad():
        rates = order(batch, t.float())
    assert rates.b_in.shape == batch.x_1.shape, "b_in must be (B, L)"
    assert (rates.b_in[batch.free] > 0).all() and (rates.b_um[batch.free] > 0).all(), \
        "rates must be positive"
    assert (order.base_hazard(t) > 0).all(), "base hazard must be positive"
    if order.learned:
        assert any(p.requires_grad for p in order.parameters()), "a learned order needs parameters"
    else:
        assert not any(p.requires_grad for p in order.parameters()), "fixed orders have no parameters"
    rates.b_in, rates.b_um = rates.b_in.double().detach(), rates.b_um.double().detach()
    logp = order.state_log_probs(rates, t)
    total = torch.logsumexp(torch.stack([logp.dropped, logp.masked, logp.clean]), 0)
    assert torch.allclose(total[batch.free].exp(), torch.ones(()).double(), atol=1e-4), \
        "state probabilities must sum to 1"
    _check_state_frequencies(order, rates, t, logp, batch.free, draws)


def _check_state_frequencies(order, rates, t, logp, free, draws: int) -> None:
    counts = torch.zeros(3, *free.shape, dtype=torch.float64)
    for _ in range(draws):
        times = order.sample_times(rates)
        assert (times.t_in <= times.t_um).all(), "T_in must not exceed T_um"
        tt = t[:, None]
        counts[0] += (tt < times.t_in).double()
        counts[1] += ((times.t_in <= tt) & (tt < times.t_um)).double()
        counts[2] += (tt >= times.t_um).double()
    freq = counts / draws
    probs = torch.stack([logp.dropped, logp.masked, logp.clean]).exp()
    err = (probs * (1 - probs) / draws).sqrt() * 5 + 1e-3
    bad = ((freq - probs).abs() > err) & free
    assert not bad.any(), f"state frequencies disagree with closed forms: max gap " \
        f"{float((freq - probs).abs()[:, free].max()):.4f}"
    assert math.isfinite(float(probs.sum()))
