"""Star-graph metrics against hand-computed values."""

from __future__ import annotations

import random

import pytest
from loflex import Example, Generated
from loflex_graphs.domain import StarGraphDomain
from loflex_graphs.metrics import spearman, star_metrics

DOMAIN = StarGraphDomain(StarGraphDomain.Options(cache=False))
VOCAB = DOMAIN.vocab


def ids(nodes):
    return VOCAB.encode([str(n) for n in nodes])


# An easy star by hand: centre/source 0, arms 0-1-2-3-4 (the path), 0-5-6-7-8, 0-9-10-11-12.
STAR_EDGES = [(0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8),
              (0, 9), (9, 10), (10, 11), (11, 12)]
STAR_PROMPT = ids([n for e in STAR_EDGES for n in e] + [0, 4])
STAR_PATH = [0, 1, 1, 2, 2, 3, 3, 4]
STAR_REF = Example(target=ids(STAR_PATH), prompt=STAR_PROMPT,
                   order_hint=[0, 0, 1, 1, 2, 2, 3, 3])


def sample(nodes, reveal_step=None, reference=STAR_REF, prompt=STAR_PROMPT):
    return Generated(tokens=ids(nodes), prompt=prompt, reference=reference,
                     reveal_step=reveal_step)


def test_perfect_prediction_scores_one():
    m = star_metrics([sample(STAR_PATH)], VOCAB)
    assert m == {"valid_path": 1.0, "exact_match": 1.0, "token_accuracy": 1.0,
                 "token_accuracy_padded": 1.0}


def test_wrong_arm_by_hand():
    # 0 5 5 6 6 7 7 8 + EOS against 0 1 1 2 2 3 3 4 + EOS: the first token and EOS agree
    m = star_metrics([sample([0, 5, 5, 6, 6, 7, 7, 8])], VOCAB)
    assert m["exact_match"] == 0.0 and m["valid_path"] == 0.0
    assert m["token_accuracy"] == pytest.approx(2 / 9)
    assert m["token_accuracy_padded"] == pytest.approx(2 / 9)


def test_short_prediction_by_hand():
    # 0 1 1 2 EOS against 0 1 1 2 2 3 3 4 EOS: 4 of 9 reference positions right
    m = star_metrics([sample([0, 1, 1, 2])], VOCAB)
    assert m["token_accuracy"] == pytest.approx(4 / 9)
    assert m["exact_match"] == 0.0 and m["valid_path"] == 0.0


def test_padded_accuracy_counts_pad_against_pad():
    # width 11 (10 tokens + EOS). Perfect row: 9 matches + 2 pad-vs-pad = 11.
    # Long row 0 1 1 2 2 3 3 4 4 5 EOS: 8 matches, then 4/EOS, 5/pad, EOS/pad wrong = 8.
    m = star_metrics([sample(STAR_PATH), sample(STAR_PATH + [4, 5])], VOCAB)
    assert m["token_accuracy_padded"] == pytest.approx(19 / 22)
    assert m["token_accuracy"] == pytest.approx((1 + 8 / 9) / 2)
    assert m["exact_match"] == 0.5


def test_valid_path_credits_an_alternative_route():
    # diamond s=0 -> a=1 -> g=3 and s -> b=2 -> g: both routes are valid paths
    prompt = ids([0, 1, 1, 3, 0, 2, 2, 3, 0, 3])
    ref = Example(target=ids([0, 1, 1, 3]), prompt=prompt)
    m = star_metrics([sample([0, 2, 2, 3], reference=ref, prompt=prompt)], VOCAB)
    assert m["valid_path"] == 1.0 and m["exact_match"] == 0.0


@pytest.mark.parametrize("nodes", [
    [0, 1, 1, 2, 2, 3, 3, 8],     # last edge 3->8 is not in the graph
    [0, 1, 2, 3, 3, 4],           # edges do not chain
    [1, 0, 2, 1, 3, 2, 4, 3],     # edges reversed
    [0, 1, 1, 2, 2, 3],           # stops before the goal
    [0, 1, 1, 2, 2, 3, 3],        # odd number of tokens
    [],                           # nothing
])
def test_invalid_paths_in_a_star_score_zero(nodes):
    assert star_metrics([sample(nodes)], VOCAB)["valid_path"] == 0.0


def test_valid_path_without_reference():
    m = star_metrics([Generated(tokens=ids(STAR_PATH), prompt=STAR_PROMPT)], VOCAB)
    assert m == {"valid_path": 1.0}


def test_order_correlation_ends_first_and_junction_first():
    ends_first = [40, 40, 30, 30, 20, 20, 10, 10]  # far edges revealed at earlier steps
    junction_first = [10, 10, 20, 20, 30, 30, 40, 40]
    assert star_metrics([sample(STAR_PATH, ends_first)], VOCAB)["order_correlation"] == -1.0
    assert star_metrics([sample(STAR_PATH, junction_first)], VOCAB)["order_correlation"] == 1.0


def test_order_correlation_uses_the_later_token_of_each_edge_by_hand():
    # edge steps max(.,.) = 1, 3, 2, 4 against distances 0, 1, 2, 3:
    # rank differences 0, 1, -1, 0 -> rho = 1 - 6*2 / (4*15) = 0.8
    steps = [0, 1, 3, 2, 2, 1, 4, 0]
    rho = star_metrics([sample(STAR_PATH, steps)], VOCAB)["order_correlation"]
    assert rho == pytest.approx(0.8)
    # tied edge steps 9, 9, 1, 1: centred ranks (1, 1, -1, -1) against (-1.5, -0.5, 0.5, 1.5)
    # -> rho = -4 / sqrt(4 * 5); the metric is the mean over samples
    both = star_metrics([sample(STAR_PATH, steps), sample(STAR_PATH, [9] * 4 + [1] * 4)], VOCAB)
    assert both["order_correlation"] == pytest.approx((0.8 - 4 / 20 ** 0.5) / 2)


def test_order_correlation_omitted_when_undefined():
    m = star_metrics([sample(STAR_PATH, [5] * 8), sample(STAR_PATH, None)], VOCAB)
    assert "order_correlation" not in m
    assert star_metrics([], VOCAB) == {}


def test_spearman_matches_scipy_with_ties():
    stats = pytest.importorskip("scipy.stats")
    rng = random.Random(0)
    for _ in range(50):
        n = rng.randint(3, 12)
        x = [rng.randint(0, 4) for _ in range(n)]
        y = [rng.randint(0, 4) for _ in range(n)]
        rho = spearman(x, y)
        if rho is not None:
            assert rho == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)


def test_domain_examples_scored_perfectly_with_an_oracle_reveal():
    domain = StarGraphDomain(StarGraphDomain.Options(difficulty="hard", cache=False,
                                                     test_size=50))
    samples = [Generated(tokens=ex.target, prompt=ex.prompt, reference=ex,
                         reveal_step=[-d for d in ex.order_hint])
               for ex in domain.examples("test")]
    m = domain.metrics(samples)
    assert m["exact_match"] == m["valid_path"] == m["token_accuracy"] == 1.0
    assert m["order_correlation"] == pytest.approx(-1.0)
