"""Test helpers for loflex and plugin authors.

- :func:`registered` registers an in-test plugin for the duration of a ``with`` block.
- :func:`check_domain`, :func:`check_generator`, :func:`check_order_dynamics` (and
  :func:`check_trunk`, which ``check_generator`` runs on a generator's trunk) are the
  contract checks every plugin's tests should call.
- :class:`ToyDomain` is a tiny conditional domain (reverse a digit string) that needs
  neither rdkit nor networkx; :class:`ToyPlugin` registers it.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import warnings
from collections.abc import Iterator, Sequence

import torch
from pydantic import Field

from loflex.config import Options
from loflex.contracts import SPLITS, Domain, Example, Generated, Generator, TrunkOutput, trunk_problem
from loflex.contracts.vocab import BOS, EOS, MASK, PAD, SPECIAL_TOKENS, Vocabulary
from loflex.diffusion.batch import collate
from loflex.diffusion.order import OrderDynamics
from loflex.extension import plugins, registry
from loflex.extension.hookspecs import hookimpl
from loflex.extension.pretrained import available, count_parameters
from loflex.sampling.inference import load_model


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
    """Assert the Generator contract on random tokens of its own vocabulary.

    Checked: logits (B, L, V) finite at real slots; ``insert_multiplier`` (B, L) and, when
    ``learn_unmask``, ``unmask_rate`` (B, L) non-negative and finite; outputs at real
    slots unchanged by extra padding; and, when the generator has a ``trunk``, that it
    satisfies :class:`loflex.contracts.Trunk` (:func:`check_trunk`).
    """
    v = generator.vocab_size
    assert v > len(SPECIAL_TOKENS), "vocab_size must include data tokens after the four specials"
    x = torch.randint(len(SPECIAL_TOKENS), v, (batch_size, length))
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
        assert torch.isfinite(pred.logits[real]).all(), "logits must be finite at real slots"
        _check_rate(pred.insert_multiplier, real, "insert_multiplier")
        if generator.learn_unmask:
            assert pred.unmask_rate is not None, "learn_unmask needs unmask_rate"
            _check_rate(pred.unmask_rate, real, "unmask_rate")
        wider = torch.cat([x, torch.full((batch_size, 3), PAD)], 1)
        wider_real = torch.cat([real, torch.zeros(batch_size, 3, dtype=torch.bool)], 1)
        pred2 = generator(wider, t, wider_real)
        assert torch.allclose(pred.logits[real], pred2.logits[:, :length][real], atol=1e-4), \
            "outputs must not depend on extra padding"
        assert torch.allclose(pred.insert_multiplier[real], pred2.insert_multiplier[:, :length][real],
                              atol=1e-4), "insert_multiplier must not depend on extra padding"
    if hasattr(generator, "trunk"):
        check_trunk(generator.trunk, v, batch_size=batch_size, length=length)


def _check_rate(rate: torch.Tensor, real: torch.Tensor, name: str) -> None:
    assert rate.shape == real.shape, f"{name} must be (B, L) like x_t"
    assert torch.isfinite(rate[real]).all(), f"{name} must be finite at real slots"
    assert (rate[real] >= 0).all(), f"{name} must be non-negative"


def check_trunk(trunk: object, vocab_size: int, batch_size: int = 3, length: int = 7) -> None:
    """Assert that ``trunk`` satisfies :class:`loflex.contracts.Trunk`.

    It needs integer ``width`` and ``cond_dim`` and must map ``(x (B, L), t (B,),
    real (B, L))`` to ``TrunkOutput(hidden (B, L, width), cond (B, cond_dim))``.
    """
    problem = trunk_problem(trunk)
    assert problem is None, f"the trunk does not satisfy loflex.contracts.Trunk: {problem}"
    x = torch.randint(len(SPECIAL_TOKENS), vocab_size, (batch_size, length))
    real = torch.ones_like(x, dtype=torch.bool)
    with torch.no_grad():
        out = trunk(x, torch.rand(batch_size), real)
    assert isinstance(out, TrunkOutput), \
        f"a trunk must return loflex.TrunkOutput(hidden, cond), not {type(out).__name__}"
    assert out.hidden.shape == (batch_size, length, trunk.width), \
        f"trunk hidden must be (B, L, width={trunk.width}), got {tuple(out.hidden.shape)}"
    assert out.cond.shape == (batch_size, trunk.cond_dim), \
        f"trunk cond must be (B, cond_dim={trunk.cond_dim}), got {tuple(out.cond.shape)}"


def default_examples(vocab_size: int = 10) -> list[Example]:
    """Two examples (one with a prompt) whose ids are data tokens of a ``vocab_size`` vocabulary.

    They carry an order hint, so orders with ``needs_order_hint`` can be checked too.
    """
    data = list(range(len(SPECIAL_TOKENS), vocab_size))
    assert data, f"vocab_size {vocab_size} has no data tokens after the four specials"

    def ids(count: int, start: int) -> list[int]:
        return [data[(start + k) % len(data)] for k in range(count)]

    return [Example(target=ids(4, 0), prompt=ids(2, 4), order_hint=[1, 2, 2, 1]),
            Example(target=ids(2, 1), order_hint=[0, 0])]


def check_order_dynamics(order: OrderDynamics, examples: Sequence[Example] | None = None,
                         draws: int = 4000, vocab_size: int = 10) -> None:
    """Assert the OrderDynamics contract, including Monte-Carlo agreement of the states.

    Checked: rates (B, L) positive at free positions; a positive base hazard; a fixed
    order has no parameters, a learned one has some and its rates depend on them; state
    probabilities that sum to 1 and match the frequencies of ``draws`` event-time samples
    within five binomial standard errors. A learned order without its own
    :meth:`~loflex.contracts.OrderDynamics.regulariser` gets a warning.

    Args:
        examples: the examples to check on; by default :func:`default_examples` with
            ``vocab_size`` (give the vocabulary size of the domain the order reads, when
            the order embeds tokens; the default examples use ids 4 to 9).
    """
    examples = examples or default_examples(vocab_size)
    batch = collate(examples)
    t = torch.tensor([0.3, 0.7], dtype=torch.float64)[: len(examples)]
    if len(examples) > 2:
        t = torch.linspace(0.2, 0.8, len(examples), dtype=torch.float64)
    if order.learned:
        _check_learned(order, batch, t.float())
    else:
        assert not any(p.requires_grad for p in order.parameters()), \
            "a fixed order (learned = False) must have no trainable parameters"
    with torch.no_grad():
        rates = order(batch, t.float())
    assert rates.b_in.shape == batch.x_1.shape, "b_in must be (B, L)"
    assert rates.b_um.shape == batch.x_1.shape, "b_um must be (B, L)"
    assert (rates.b_in[batch.free] > 0).all() and (rates.b_um[batch.free] > 0).all(), \
        "rates must be positive"
    assert (order.base_hazard(t) > 0).all(), "base hazard must be positive"
    rates.b_in, rates.b_um = rates.b_in.double().detach(), rates.b_um.double().detach()
    logp = order.state_log_probs(rates, t)
    total = torch.logsumexp(torch.stack([logp.dropped, logp.masked, logp.clean]), 0)
    assert torch.allclose(total[batch.free].exp(), torch.ones(()).double(), atol=1e-4), \
        "state probabilities must sum to 1"
    _check_state_frequencies(order, rates, t, logp, batch.free, draws)


def _check_learned(order: OrderDynamics, batch, t: torch.Tensor) -> None:
    """A learned order has parameters, its rates depend on them, and it has a regulariser."""
    params = [p for p in order.parameters() if p.requires_grad]
    assert params, "a learned order (learned = True) needs trainable parameters"
    rates = order(batch, t)
    total = rates.b_in[batch.free].sum() + rates.b_um[batch.free].sum()
    grads = (torch.autograd.grad(total, params, allow_unused=True) if total.requires_grad
             else [None])
    assert any(g is not None and bool(g.abs().sum() > 0) for g in grads), (
        "a learned order's rates must depend on its parameters: b_in and b_um have no gradient "
        "with respect to any of them (does forward ignore the network?)")
    if type(order).regulariser is OrderDynamics.regulariser:
        warnings.warn(f"order '{getattr(order, 'name', type(order).__name__)}' is learned but "
                      "keeps the default regulariser (0): nothing stops its schedule from "
                      "pushing events to t = 0 or 1; override regulariser (see "
                      "docs/learned-orders.md)", UserWarning, stacklevel=3)


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

def card_architecture(run: dict, parameters: int) -> dict:
    """The ``architecture`` entry of a shipped model's ``card.json``.

    Args:
        run: the model's ``run.json`` (its ``generator`` and ``order`` entries are kept).
        parameters: values stored in its ``model.safetensors``.
    """
    return {"generator": run["generator"], "order": run["order"], "parameters": parameters}


def check_shipped_model(name: str):
    """Check that a registered pretrained model matches its card; return it loaded.

    The card (``card.md`` and ``card.json``) must exist, ``card.json``'s
    ``architecture`` must name the generator and order with the options of the packed
    ``run.json``, and its parameter count must equal both the stored values and the
    parameters of the networks built from the run.

    Returns:
        the :class:`loflex.inference.Loaded` model, for a smoke run of the caller's.

    Raises:
        AssertionError: naming the model and what differs.
    """
    model = available()[name]
    folder = model.path()
    assert (folder / "card.md").is_file(), f"{name}: no card.md"
    card = json.loads((folder / "card.json").read_text(encoding="utf-8"))
    run = json.loads((folder / "run.json").read_text(encoding="utf-8"))
    stored = count_parameters(folder / "model.safetensors")
    expected = card_architecture(run, stored)
    assert card.get("architecture") == expected, (
        f"{name}: card.json architecture {card.get('architecture')} is not {expected}")
    loaded = load_model(folder)
    built = sum(p.numel() for module in (loaded.model.generator, loaded.model.order)
                for p in module.parameters())
    assert built == stored, f"{name}: the networks have {built} parameters, the card {stored}"
    return loaded
