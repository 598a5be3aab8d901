"""The star-graph domain: registration, vocabulary, serialisation, determinism and caching."""

from __future__ import annotations

import networkx as nx
import pytest
import torch
from loflex import Domain, LoflexError, collate
from loflex.contracts.vocab import BOS, EOS
from loflex.extension import registry
from loflex.extension.testing import check_domain
from loflex_graphs import dataset
from loflex_graphs.domain import StarGraphDomain
from loflex_graphs.graphs import split_prompt


def make(tmp_path=None, **options) -> StarGraphDomain:
    options.setdefault("train_size", 200)
    options.setdefault("test_size", 200)
    if tmp_path is None:
        options.setdefault("cache", False)
    return StarGraphDomain(StarGraphDomain.Options(**options), cache_dir=tmp_path)


def nodes_of(domain, ids):
    return [int(tok) for tok in domain.vocab.decode(ids)]


def test_registered_through_the_entry_point():
    domain = registry.build(Domain, {"name": "star-graph", "options": {"difficulty": "medium",
                                                                        "cache": False}})
    assert isinstance(domain, StarGraphDomain)
    assert registry.owner(Domain, "star-graph").plugin == "graphs"


def test_unknown_option_is_a_config_error():
    with pytest.raises(LoflexError, match="difficulty"):
        registry.build(Domain, {"name": "star-graph", "options": {"difficulty": "extreme"}})


@pytest.mark.parametrize("difficulty,nodes,prompt,target", [
    ("easy", 20, 3 * 4 * 2 + 2, 8),      # 12 edges, path of 4 edges
    ("medium", 20, 3 * 5 * 2 + 2, 10),   # at most 15 edges, path of at most 5 edges
    ("hard", 56, 5 * 11 * 2 + 2, 22),    # at most 55 edges, path of at most 11 edges
])
def test_vocabulary_and_lengths(difficulty, nodes, prompt, target):
    domain = make(difficulty=difficulty)
    assert domain.vocab.itos[4:] == [str(n) for n in range(nodes)]
    assert (domain.max_prompt_length, domain.max_target_length) == (prompt, target)
    assert domain.max_length == prompt + 1 + target + 1
    longest = max(len(ex.prompt) for ex in domain.examples("train"))
    assert longest <= prompt and all(len(ex.target) <= target
                                     for ex in domain.examples("train"))


def test_vocabulary_restores_from_state_and_rejects_a_smaller_one():
    state = make(difficulty="hard").state_dict()
    assert state == {"vocab": {"tokens": [str(n) for n in range(56)]}}
    restored = StarGraphDomain(StarGraphDomain.Options(difficulty="hard", cache=False), state=state)
    assert restored.vocab.itos == make(difficulty="hard").vocab.itos
    small = make(difficulty="easy").state_dict()
    with pytest.raises(LoflexError, match="difficulty"):
        StarGraphDomain(StarGraphDomain.Options(difficulty="hard", cache=False), state=small)


def test_text_round_trip_and_prompt_parsing_recover_the_graph():
    domain = make(difficulty="medium")
    for ex in list(domain.examples("test"))[:50]:
        text = domain.to_text(ex.prompt)
        assert domain.encode(text) == ex.prompt
        assert domain.parse_prompt(text).prompt == ex.prompt
        assert domain.encode(domain.to_text(ex.target)) == ex.target
        edges, source, goal = split_prompt(nodes_of(domain, ex.prompt))
        graph = nx.DiGraph(edges)
        path = nx.shortest_path(graph, source, goal)
        target = nodes_of(domain, ex.target)
        assert target == [n for a, b in zip(path, path[1:]) for n in (a, b)]
        hint = ex.order_hint
        assert len(hint) == len(ex.target) and hint[0::2] == hint[1::2]


def test_parse_prompt_rejects_bad_prompts():
    domain = make()
    with pytest.raises(LoflexError, match="even number"):
        domain.parse_prompt("1 2 3 4 5")
    with pytest.raises(LoflexError, match="vocabulary"):
        domain.parse_prompt("1 2 3 99")


def test_order_hint_reaches_the_batch_on_target_positions():
    domain = make()
    exs = list(domain.examples("valid"))[:4]
    batch = collate(exs)
    assert batch.order_hint is not None
    for row, ex in enumerate(exs):
        start = len(ex.prompt) + 1
        assert batch.x_1[row, start - 1] == BOS and batch.x_1[row, start + 8] == EOS
        assert batch.order_hint[row, start:start + 8].tolist() == ex.order_hint
        assert batch.order_hint[row, start:start + 8].tolist() == [0, 0, 1, 1, 2, 2, 3, 3]  # easy
        assert torch.all(batch.order_hint[row, :start] == 0)


def test_the_domain_declares_its_order_hint_and_headline_metric():
    assert StarGraphDomain.provides_order_hint is True
    assert StarGraphDomain.headline_metric == "exact_match"


def test_deterministic_for_a_seed_and_splits_are_disjoint_streams():
    a, b = make(seed=1), make(seed=1)
    assert list(a.examples("test")) == list(b.examples("test"))
    assert list(a.examples("test")) != list(make(seed=2).examples("test"))
    prompts = {tuple(ex.prompt) for ex in a.examples("train")}
    assert not prompts & {tuple(ex.prompt) for ex in a.examples("test")}
    assert list(make(seed=1, train_size=50).examples("test")) == list(a.examples("test"))


def test_cache_hit_reads_the_file_instead_of_generating(tmp_path, monkeypatch):
    first = make(tmp_path, seed=3).examples("valid")
    files = list(tmp_path.iterdir())
    assert len(files) == 1 and files[0].suffix == ".npz"

    def fail(*args, **kwargs):
        raise AssertionError("generated although cached")

    monkeypatch.setattr(dataset, "generate_split", fail)
    assert list(make(tmp_path, seed=3).examples("valid")) == list(first)
    with pytest.raises(AssertionError, match="generated"):
        make(tmp_path, seed=4).examples("valid")  # another key


def test_corrupt_cache_is_regenerated(tmp_path):
    first = list(make(tmp_path).examples("valid"))
    (path,) = tmp_path.iterdir()
    path.write_bytes(b"not a zip file")
    assert list(make(tmp_path).examples("valid")) == first
    assert path.stat().st_size > 100


def test_default_cache_directory_is_under_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    StarGraphDomain(StarGraphDomain.Options(valid_size=5)).examples("valid")
    assert len(list((tmp_path / ".cache/loflex/star-graph").glob("*.npz"))) == 1


def test_unknown_split_is_a_data_error():
    with pytest.raises(LoflexError, match="split"):
        make().examples("dev")


@pytest.mark.slow
def test_fifty_thousand_easy_graphs_generate():
    """Correctness at scale; the time it takes is measured by tests/bench_dataset.py."""
    data = make(train_size=50_000).examples("train")
    assert len(data) == 50_000 and len(data[-1].target) == 8
    assert data[-1].order_hint == [0, 0, 1, 1, 2, 2, 3, 3]


def test_examples_support_negative_indices_and_slices():
    data = make().examples("valid")
    assert data[-1] == data[len(data) - 1] and data[1:3] == [data[1], data[2]]
    with pytest.raises(IndexError):
        data[len(data)]


def test_describe_names_source_goal_and_edges():
    domain = make(difficulty="easy")
    info = domain.describe(domain.examples("test")[0])
    assert info["edges"] == 12 and info["source"] == int(info["target"].split()[0])


def test_domain_contract_checks():
    check_domain(make(difficulty="medium"))
