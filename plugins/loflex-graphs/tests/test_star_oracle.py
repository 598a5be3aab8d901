"""The star-oracle order: per-token b_in from junction distances, fixed and parameter-free."""

from __future__ import annotations

import math

import pytest
import torch
from loflex import ConfigError, Example, LoflexError, OrderDynamics, collate
from loflex.config import validate_run
from loflex.extension import registry
from loflex.extension.testing import check_order_dynamics
from loflex_graphs.domain import StarGraphDomain
from loflex_graphs.oracle import StarOracleOrder


def oracle(**options) -> StarOracleOrder:
    return StarOracleOrder(StarOracleOrder.Options(**options))


def easy_batch():
    domain = StarGraphDomain(StarGraphDomain.Options(cache=False, valid_size=3))
    return collate(list(domain.examples("valid")))


def test_registered_and_fixed():
    order = registry.build(OrderDynamics, {"name": "star-oracle", "options": {"sharpness": 2.0}})
    assert isinstance(order, StarOracleOrder) and order.options.sharpness == 2.0
    assert order.learned is False and list(order.parameters()) == []
    assert registry.owner(OrderDynamics, "star-oracle").plugin == "graphs"


def test_b_in_by_hand_on_easy_graphs():
    # easy targets have distances 0 0 1 1 2 2 3 3 (d_max = 3): b = exp(4 (d/3 - 1/2))
    batch = easy_batch()
    rates = oracle()(batch, torch.full((len(batch),), 0.5))
    for row in range(len(batch)):
        free = batch.free[row]
        expected = [math.exp(4 * (d / 3 - 0.5)) for d in (0, 0, 1, 1, 2, 2, 3, 3)]
        assert rates.b_in[row, free].tolist() == pytest.approx(expected, rel=1e-6)
        assert torch.all(rates.b_in[row, ~free] == 1)
    assert torch.all(rates.b_um == 1)


def test_expected_insertion_times_grow_from_path_ends_to_junction():
    # a = 1: E[T_in] = 1 / (1 + b); path of 5 edges with the centre after node 1
    side = [1, 1, 0, 0, 0, 0, 1, 1, 2, 2]
    batch = collate([Example(target=[4 + i for i in range(10)], prompt=[20, 21],
                             order_hint=side)])
    rates = oracle()(batch, torch.tensor([0.2]))
    b = rates.b_in[batch.free]
    mean_t_in = 1 / (1 + b)
    by_distance = {d: float(m) for d, m in zip(side, mean_t_in)}
    assert by_distance[2] < by_distance[1] < by_distance[0]
    assert by_distance[0] == pytest.approx(1 / (1 + math.exp(-2)))  # junction: d/d_max = 0
    assert by_distance[2] == pytest.approx(1 / (1 + math.exp(2)))   # path end: d/d_max = 1


def test_sampled_insertion_times_follow_the_oracle():
    batch = easy_batch()
    rates = oracle()(batch, torch.zeros(len(batch)))
    draws = torch.stack([oracle().sample_times(rates).t_in for _ in range(4000)])  # (N, B, L)
    mean = draws.mean(0)[batch.free]
    expected = 1 / (1 + rates.b_in[batch.free])
    std = (expected * (1 - expected) / 4000).sqrt()  # Var[T_in] < E[T_in](1 - E[T_in]) on [0,1]
    assert torch.all((mean - expected).abs() < 5 * std)


def test_zero_sharpness_is_uniform_and_constant_rows_are_uniform():
    batch = easy_batch()
    assert torch.all(oracle(sharpness=0.0)(batch, torch.zeros(len(batch))).b_in == 1)
    flat = collate([Example(target=[4, 5], order_hint=[0.0, 0.0])])
    assert torch.all(oracle()(flat, torch.zeros(1)).b_in == 1)


def test_missing_order_hint_names_the_fix():
    batch = collate([Example(target=[4, 5, 6])])
    assert batch.order_hint is None
    with pytest.raises(LoflexError, match="star-graph"):
        oracle()(batch, torch.zeros(1))


def test_order_contract_checks():
    domain = StarGraphDomain(StarGraphDomain.Options(cache=False, valid_size=2,
                                                     difficulty="medium"))
    check_order_dynamics(oracle(), list(domain.examples("valid")), draws=2000)


def test_a_run_pairing_the_oracle_with_a_domain_without_hints_is_refused(tmp_path):
    data = tmp_path / "words.txt"
    data.write_text("abc\nbca\ncab\n")
    with pytest.raises(ConfigError, match="order 'star-oracle' reads a per-token order hint.*"
                       "domain 'sequences' does not provide.*star-graph"):
        validate_run({"domain": {"name": "sequences", "options": {"path": str(data)}},
                      "order": {"name": "star-oracle"}})
    validate_run({"domain": {"name": "star-graph"}, "order": {"name": "star-oracle"}})
