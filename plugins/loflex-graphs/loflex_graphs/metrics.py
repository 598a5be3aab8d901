"""Star-graph metrics: exact match, token accuracy, path validity and order correlation.

Predictions and references are compared as token ids with EOS appended to both
(``Generated.tokens`` has EOS removed; the reference target has none), as in the
reference code, where the prediction is the suffix after BOS with pads removed.
"""

from __future__ import annotations

from collections.abc import Sequence

import networkx as nx
import numpy as np
from loflex.contracts import Generated
from loflex.contracts.vocab import EOS, PAD, SPECIAL_TOKENS, Vocabulary

from loflex_graphs.graphs import split_prompt


def to_nodes(ids: Sequence[int], vocab: Vocabulary) -> list[int | None]:
    """Return the node id of every token id (None for specials and non-node tokens)."""
    nodes: list[int | None] = []
    for i in ids:
        i = int(i)
        token = vocab.itos[i] if len(SPECIAL_TOKENS) <= i < len(vocab) else ""
        nodes.append(int(token) if token.isdigit() else None)
    return nodes


def exact_match(tokens: Sequence[int], reference: Sequence[int]) -> bool:
    """Return whether the generated target equals the reference, token for token."""
    return list(tokens) == list(reference)


def token_accuracy(tokens: Sequence[int], reference: Sequence[int]) -> float:
    """Return the fraction of reference positions (EOS included) holding the right token.

    ``acc = |{i < n+1 : pred[i] = ref[i]}| / (n + 1)`` with ``n = len(reference)``,
    ``pred = tokens + [EOS]`` and ``ref = reference + [EOS]``; padding earns no credit.
    """
    pred, ref = list(tokens) + [EOS], list(reference) + [EOS]
    return sum(p == r for p, r in zip(pred, ref)) / len(ref)


def padded_token_accuracy(tokens: Sequence[Sequence[int]],
                          references: Sequence[Sequence[int]]) -> float:
    """Return the reference code's token accuracy, where pad-vs-pad counts as correct.

    Every prediction and reference (each with EOS appended) is right-padded to the
    longest of them all, ``W``; the result is the fraction of the ``N x W`` positions
    where prediction and reference agree.
    """
    preds = [list(t) + [EOS] for t in tokens]
    refs = [list(r) + [EOS] for r in references]
    width = max(len(row) for row in preds + refs)
    matches = sum(
        sum(p == r for p, r in zip(_pad(pred, width), _pad(ref, width)))
        for pred, ref in zip(preds, refs)
    )
    return matches / (len(preds) * width)


def _pad(row: list[int], width: int) -> list[int]:
    return row + [PAD] * (width - len(row))


def is_valid_path(tokens: Sequence[int | None], prompt: Sequence[int | None]) -> bool:
    """Return whether generated edges form a simple path from source to goal in the prompt graph.

    Args:
        tokens: generated node ids ``u1 v1 u2 v2 ...`` (None for a non-node token).
        prompt: prompt node ids ``u v u v ... source goal``.

    Every emitted edge must be a (directed) edge of the prompt, consecutive edges must
    chain (``v_k = u_{k+1}``), the first starts at the source and the last ends at the
    goal, and no node repeats. A correct path that differs from the reference counts.
    """
    if not tokens or len(tokens) % 2 or None in tokens or None in prompt:
        return False
    try:
        edges, source, goal = split_prompt(list(prompt))
    except ValueError:
        return False
    graph = nx.DiGraph(edges)
    pairs = [(tokens[i], tokens[i + 1]) for i in range(0, len(tokens), 2)]
    if any(v != u for (_, v), (u, _) in zip(pairs, pairs[1:])):
        return False
    nodes = [pairs[0][0]] + [v for _, v in pairs]
    if nodes[0] != source or nodes[-1] != goal:
        return False
    return all(node in graph for node in nodes) and nx.is_simple_path(graph, nodes)


def average_ranks(values: Sequence[float]) -> np.ndarray:
    """Return ranks 0..n-1 of ``values``, ties sharing the mean of their ranks."""
    values = np.asarray(values, dtype=float)
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(len(values))
    _, groups = np.unique(values, return_inverse=True)
    return (np.bincount(groups, weights=ranks) / np.bincount(groups))[groups]


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Return Spearman's rank correlation, or None when undefined (n < 2 or a constant input).

    ``rho = corr(rank(x), rank(y))`` with average ranks for ties.
    """
    if len(x) < 2 or len(set(x)) < 2 or len(set(y)) < 2:
        return None
    rx, ry = average_ranks(x), average_ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    return float((rx * ry).sum() / np.sqrt((rx * rx).sum() * (ry * ry).sum()))


def reveal_order_correlation(sample: Generated) -> float | None:
    """Return Spearman(edge reveal step, edge junction distance) of one sample, or None.

    Edge k of the generated target is revealed at ``max(step[2k], step[2k+1])`` and is
    given the junction distance of the reference's edge k (``reference.order_hint``); only the
    edges present in both are used. Ideal (ends first, junction last): -1.
    """
    ref = sample.reference
    steps = sample.reveal_step
    if ref is None or ref.order_hint is None or steps is None or len(steps) != len(sample.tokens):
        return None
    n_edges = min(len(sample.tokens), len(ref.target)) // 2
    edge_steps = [max(steps[2 * k], steps[2 * k + 1]) for k in range(n_edges)]
    distances = [ref.order_hint[2 * k] for k in range(n_edges)]
    return spearman(edge_steps, distances)


def star_metrics(samples: Sequence[Generated], vocab: Vocabulary) -> dict[str, float]:
    """Score star-graph samples.

    Returns:
        ``valid_path`` over all samples; ``exact_match``, ``token_accuracy`` and
        ``token_accuracy_padded`` over the samples with a reference; ``order_correlation``
        (mean over samples where it is defined) only when at least one sample has it.
    """
    if not samples:
        return {}
    valid = [is_valid_path(to_nodes(s.tokens, vocab), to_nodes(_strip(s.prompt), vocab))
             for s in samples]
    result = {"valid_path": float(np.mean(valid))}
    scored = [s for s in samples if s.reference is not None]
    if scored:
        refs = [s.reference.target for s in scored]
        result["exact_match"] = float(np.mean([exact_match(s.tokens, r)
                                               for s, r in zip(scored, refs)]))
        result["token_accuracy"] = float(np.mean([token_accuracy(s.tokens, r)
                                                  for s, r in zip(scored, refs)]))
        result["token_accuracy_padded"] = padded_token_accuracy([s.tokens for s in scored], refs)
    rhos = [rho for rho in map(reveal_order_correlation, samples) if rho is not None]
    if rhos:
        result["order_correlation"] = float(np.mean(rhos))
    return result


def _strip(ids: Sequence[int]) -> list[int]:
    """Drop special tokens (e.g. a trailing BOS) from prompt ids."""
    return [int(i) for i in ids if int(i) >= len(SPECIAL_TOKENS)]
