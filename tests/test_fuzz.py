"""Property tests: tokenizers, the forward process and config parsing on arbitrary input."""

from __future__ import annotations

import math
import tomllib

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from loflex.config import TrainConfig, load_run, run_to_toml, validate_run
from loflex.contracts import Domain, Example
from loflex.contracts.vocab import MASK, PAD, SPECIAL_TOKENS, Vocabulary
from loflex.diffusion.batch import collate
from loflex.diffusion.order import EventTimes
from loflex.diffusion.process import noise
from loflex.errors import DataError, LoflexError
from loflex.extension import registry

FAST = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


# -- tokenizers --------------------------------------------------------------------------

@given(st.lists(st.text(max_size=3), max_size=12), st.lists(st.text(max_size=3), max_size=12))
@FAST
def test_vocabulary_encode_decode(known, tokens):
    vocab = Vocabulary(list(dict.fromkeys(known)))
    try:
        ids = vocab.encode(tokens)
    except DataError as exc:
        assert any(tok not in vocab for tok in tokens)
        assert "not in the model's vocabulary" in exc.message
        return
    assert all(0 <= i < len(vocab) for i in ids)
    plain = [tok for tok in tokens if tok not in SPECIAL_TOKENS]
    assert vocab.decode(ids) == plain
    assert Vocabulary.from_json(vocab.to_json()).encode(tokens) == ids


@given(st.lists(st.integers(min_value=-10**6, max_value=10**6), max_size=20))
@FAST
def test_vocabulary_decode_never_crashes(ids):
    vocab = Vocabulary(list("ACGT"))
    out = vocab.decode(ids)
    assert len(out) == sum(1 for i in ids if i >= len(SPECIAL_TOKENS)), "specials are dropped"
    assert all(tok in vocab.itos[len(SPECIAL_TOKENS):] or tok == "<unk>" for tok in out)


TOKENIZERS = {
    "char": {},
    "whitespace": {},
    "regex": {"pattern": "[A-Z][a-z]?|[0-9]|[=#()]"},
}
CORPUS = {
    "char": ["GATTACA", "héllo wörld", "CC(=O)O", "😀x"],
    "whitespace": ["the cat sat", "a  b\tc", "x y z"],
    "regex": ["CcNa(O)", "Br2=C", "H2O"],
}


@pytest.fixture(scope="module", params=sorted(TOKENIZERS))
def domain(request, tmp_path_factory):
    path = tmp_path_factory.mktemp(request.param) / "seqs.txt"
    path.write_text("\n".join(CORPUS[request.param]) + "\n", encoding="utf-8")
    return registry.build(Domain, {"name": "sequences", "options": {
        "path": str(path), "tokenizer": request.param, "valid_fraction": 0, "test_fraction": 0,
        **TOKENIZERS[request.param]}})


@given(text=st.text(max_size=40))
@FAST
def test_encode_arbitrary_text_never_crashes(domain, text):
    try:
        ids = domain.encode(text)
    except DataError:
        return
    assert all(len(SPECIAL_TOKENS) <= i < len(domain.vocab) for i in ids)
    assert domain.decode(ids) == domain.detokenize(domain.tokenize(text))


@given(ids=st.lists(st.integers(min_value=-5, max_value=200), max_size=30))
@FAST
def test_decode_arbitrary_ids_never_crashes(domain, ids):
    text = domain.decode(ids)
    valid = all(len(SPECIAL_TOKENS) <= i < len(domain.vocab) for i in ids)
    assert (text is not None) == valid
    assert isinstance(domain.to_text(ids), str)


@given(data=st.data())
@FAST
def test_round_trip_on_valid_text(domain, data):
    tokens = domain.vocab.itos[len(SPECIAL_TOKENS):]
    chosen = data.draw(st.lists(st.sampled_from(tokens), max_size=15))
    text = domain.detokenize(chosen)
    ids = domain.encode(text)
    assert ids == domain.vocab.encode(chosen)
    assert domain.decode(ids) == text


@given(lines=st.lists(st.text(max_size=12), max_size=8),
       tokenizer=st.sampled_from(sorted(TOKENIZERS)), max_length=st.integers(1, 6),
       too_long=st.sampled_from(["skip", "truncate"]))
@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_arbitrary_files_load_or_give_a_data_error(tmp_path, lines, tokenizer, max_length,
                                                   too_long):
    path = tmp_path / "seqs.txt"
    path.write_text("\n".join(lines), encoding="utf-8", errors="surrogatepass")
    spec = {"name": "sequences", "options": {
        "path": str(path), "tokenizer": tokenizer, "max_length": max_length,
        "too_long": too_long, "valid_fraction": 0, "test_fraction": 0, **TOKENIZERS[tokenizer]}}
    try:
        domain = registry.build(Domain, spec)
    except DataError:
        return
    train = domain.examples("train")
    assert train and all(0 < len(ex.target) <= max_length for ex in train)
    assert domain.report.records == len(train) + domain.report.too_long * (too_long == "skip")


# -- the forward process -----------------------------------------------------------------

@st.composite
def noisy_inputs(draw):
    rows = draw(st.integers(1, 4))
    examples = []
    for _ in range(rows):
        target = draw(st.lists(st.integers(4, 9), max_size=7))
        prompt = draw(st.lists(st.integers(4, 9), max_size=3))
        examples.append(Example(target=target, prompt=prompt))
    batch = collate(examples)
    B, L = batch.x_1.shape
    unit = st.one_of(st.sampled_from([0.0, 0.5, 1.0]), st.floats(0, 1))
    a = torch.tensor(draw(st.lists(unit, min_size=B * L, max_size=B * L))).reshape(B, L)
    b = torch.tensor(draw(st.lists(unit, min_size=B * L, max_size=B * L))).reshape(B, L)
    t = torch.tensor(draw(st.lists(unit, min_size=B, max_size=B)))
    if draw(st.booleans()):  # ties: t exactly at some token's event times
        t = a[:, 0].clone()
    hazard = torch.tensor(draw(st.lists(st.floats(0, 10), min_size=B * L,
                                        max_size=B * L))).reshape(B, L)
    return batch, EventTimes(torch.minimum(a, b), torch.maximum(a, b)), t, hazard


@given(noisy_inputs())
@FAST
def test_forward_process_is_consistent(inputs):
    batch, times, t, hazard = inputs
    out = noise(batch, times, t, hazard)
    free = batch.free
    tt = t[:, None]
    assert torch.equal(out.dropped, free & (tt < times.t_in))
    assert torch.equal(out.masked, free & (tt >= times.t_in) & (tt < times.t_um))
    for row in range(len(batch)):
        slots = int(out.real[row].sum())
        kept = batch.real[row] & ~out.dropped[row]
        assert slots == int(kept.sum())
        s = out.s_t[row, :slots]
        assert torch.equal(s, kept.nonzero().flatten()), "slots hold the survivors, in order"
        x_1 = batch.x_1[row, s]
        expected = torch.where(out.masked[row, s], torch.full_like(x_1, MASK), x_1)
        assert torch.equal(out.x_t[row, :slots], expected)
        assert torch.equal(out.target[row, :slots], x_1)
        assert (out.x_t[row, slots:] == PAD).all() and not out.real[row, slots:].any()
        assert int(out.gaps[row].sum()) == int(out.dropped[row].sum()), "every dropped token " \
            "sits in the gap left of a survivor (EOS is never dropped)"
        prev = -1
        for i, pos in enumerate(s.tolist()):
            between = hazard[row, prev + 1:pos][out.dropped[row, prev + 1:pos]].sum()
            assert out.gaps[row, i] == pos - prev - 1
            assert math.isclose(float(out.gap_rates[row, i]), float(between), rel_tol=1e-5,
                                abs_tol=1e-5)
            prev = pos
    assert not (out.dropped & batch.fixed).any() and not (out.masked & batch.fixed).any()


def closed_form_states(t: float, a: float, b_in: float, b_um: float) -> tuple[float, float]:
    """P(dropped) = u^b_in and P(masked) = u^b_um b_in (1 - u^d) / d, u = 1 - t^a, d = b_in - b_um
    (b_in u^b_in (-log u) when d = 0), in double precision with expm1."""
    u = 1 - t**a
    if u <= 0:
        return 0.0, 0.0
    log_u = math.log(u)
    d = b_in - b_um
    if d == 0:
        return u**b_in, b_in * u**b_in * -log_u
    return u**b_in, u**b_um * b_in * -math.expm1(d * log_u) / d


def state_probs(t: float, a: float, b_in: float, b_um: float) -> list[float]:
    from loflex.diffusion import schedule

    bi, bu = (torch.tensor([[b]], dtype=torch.float64) for b in (b_in, b_um))
    tt = torch.tensor([[t]], dtype=torch.float64)
    logs = [schedule.log_prob_dropped(tt, a, bi), schedule.log_prob_masked(tt, a, bi, bu),
            schedule.log_prob_clean(tt, a, bi, bu)]
    assert all(not torch.isnan(v).any() and (v <= 0).all() for v in logs)
    return [float(v.exp()) for v in logs]


@given(st.floats(0.05, 20), st.sampled_from([0.0, 0.5, -0.5, 3.0]), st.floats(0, 0.99),
       st.sampled_from([0.5, 1.0, 2.0]))
@FAST
def test_state_probabilities_match_the_closed_form(b_in, d, t, a):
    assume(b_in - d > 0)
    dropped, masked, clean = state_probs(t, a, b_in, b_in - d)
    want_dropped, want_masked = closed_form_states(t, a, b_in, b_in - d)
    floor = 2e-7 * (1 + (b_in / abs(d) if d else 0))  # the documented 1e-7 floors, scaled
    assert math.isclose(dropped + masked + clean, 1.0, abs_tol=floor)
    assert math.isclose(dropped, want_dropped, rel_tol=1e-9, abs_tol=1e-12)
    assert math.isclose(masked, want_masked, rel_tol=1e-4, abs_tol=floor)


@pytest.mark.parametrize("d", [2e-6, 1e-5, 1e-4])
def test_masked_probability_with_nearly_equal_rates(d):
    for t in (0.0, 1e-3, 1e-2):
        _, masked, _ = state_probs(t, 1.0, 20.0, 20.0 - d)
        assert math.isclose(masked, closed_form_states(t, 1.0, 20.0, 20.0 - d)[1],
                            rel_tol=1e-3, abs_tol=1e-5), (t, d, masked)


# -- config parsing ----------------------------------------------------------------------

LEAF = (st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats()
        | st.text(max_size=8) | st.sampled_from(["sequences", "uniform", "transformer", "cpu"]))
VALUE = st.recursive(LEAF, lambda c: st.lists(c, max_size=3)
                     | st.dictionaries(st.text(max_size=6), c, max_size=3), max_leaves=8)
TRAIN_KEYS = sorted(TrainConfig.model_fields) + ["bogus"]
SAMPLE_KEYS = ["num_samples", "top_p", "top_k", "temperature", "max_length", "split", "bogus"]
DOMAIN_KEYS = ["path", "tokenizer", "pattern", "separator", "max_length", "too_long",
               "valid_fraction", "test_fraction", "alphabet", "bogus"]


def component(names, keys):
    return st.fixed_dictionaries({}, optional={
        "name": st.sampled_from(names) | VALUE,
        "options": st.dictionaries(st.sampled_from(keys), VALUE, max_size=3) | VALUE})


NEAR_VALID = st.fixed_dictionaries({}, optional={
    "domain": component(["sequences", "nope"], DOMAIN_KEYS) | VALUE,
    "order": component(["uniform", "kumaraswamy", "nope"], ["a", "layers", "bogus"]),
    "generator": component(["transformer"], ["layers", "width", "heads", "bogus"]),
    "train": st.dictionaries(st.sampled_from(TRAIN_KEYS), VALUE, max_size=4) | VALUE,
    "sample": st.dictionaries(st.sampled_from(SAMPLE_KEYS), VALUE, max_size=3),
    "seed": VALUE,
    "extra": VALUE,
})


def check_run(data) -> None:
    try:
        run = validate_run(data)
    except LoflexError:
        return
    again = validate_run(tomllib.loads(run_to_toml(run)))
    assert again == run, "a valid run survives its config.toml"


@given(st.dictionaries(st.text(max_size=8), VALUE, max_size=5) | VALUE)
@FAST
def test_arbitrary_dicts_give_a_run_or_a_loflex_error(data):
    check_run(data)


@given(NEAR_VALID)
@settings(max_examples=400, deadline=None)
def test_near_valid_dicts_give_a_run_or_a_loflex_error(data):
    check_run(data)


SEQUENCE_OPTIONS = st.fixed_dictionaries({}, optional={
    "path": st.text(min_size=1, max_size=12).filter(lambda p: "\x00" not in p),
    "tokenizer": st.sampled_from(["char", "whitespace"]),
    "separator": st.text(min_size=1, max_size=4),
    "alphabet": st.text(max_size=8),
    "column": st.text(max_size=8),
    "max_length": st.integers(1, 2**40),
    "valid_fraction": st.floats(0, 0.45),
    "test_fraction": st.floats(0, 0.45),
    "seed": st.integers(-2**63, 2**63),
})


@given(SEQUENCE_OPTIONS, st.floats(1e-12, 1e3), st.integers(0, 2**32 - 1))
@FAST
def test_valid_runs_survive_config_toml(options, lr, seed):
    data = {"domain": {"name": "sequences", "options": {"path": "seqs.txt", **options}},
            "train": {"lr": lr}, "seed": seed}
    run = validate_run(data)
    assert validate_run(tomllib.loads(run_to_toml(run))) == run


@given(st.lists(st.text(max_size=30), max_size=4))
@FAST
def test_arbitrary_overrides_give_a_run_or_a_loflex_error(overrides):
    try:
        load_run(None, ["domain.name=sequences", "domain.options.path=seqs.txt", *overrides])
    except LoflexError:
        pass
