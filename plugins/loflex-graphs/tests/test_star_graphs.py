"""Star-graph generation: shapes per difficulty, checked on the serialised graphs with networkx."""

from __future__ import annotations

import random
from collections import Counter

import networkx as nx
import pytest
from loflex_graphs.graphs import (
    PRESETS,
    StarGraph,
    generate_graph,
    junction_distances,
    prompt_nodes,
    split_prompt,
    target_nodes,
    target_side,
)

SHAPES = {  # degree, path lengths (nodes), min_plan_length, node id bound: docs/method.md §6.1
    "easy": (3, {5}, 4, 20),
    "medium": (3, {3, 4, 5, 6}, 2, 20),
    "hard": (5, set(range(6, 13)), 5, 56),
}


def _graphs(difficulty: str, n: int, seed: int = 0) -> list[StarGraph]:
    rng = random.Random(seed)
    return [generate_graph(rng, PRESETS[difficulty]) for _ in range(n)]


def _centre(graph: nx.DiGraph) -> int:
    hubs = [n for n in graph if graph.in_degree(n) + graph.out_degree(n) >= 3]
    assert len(hubs) == 1, f"a star graph has one junction, found {hubs}"
    return hubs[0]


@pytest.mark.parametrize("difficulty", ["easy", "medium", "hard"])
def test_graph_is_a_star_of_the_stated_shape(difficulty):
    degree, lengths, min_plan, bound = SHAPES[difficulty]
    for g in _graphs(difficulty, 300):
        edges, source, goal = split_prompt(prompt_nodes(g))
        graph = nx.DiGraph(edges)
        assert nx.is_tree(graph.to_undirected()), "the star must be a tree"
        assert len(edges) == len(set(edges)) == graph.number_of_nodes() - 1
        assert all(0 <= n < bound for n in graph)
        centre = _centre(graph)
        assert graph.out_degree(centre) == degree  # every path continues after the centre
        for n in graph:
            if n != centre:
                assert graph.in_degree(n) <= 1 and graph.out_degree(n) <= 1
        # each arm after the centre has >= min_plan_length nodes
        for first in graph.successors(centre):
            arm = nx.descendants(graph, first) | {first}
            assert len(arm) >= min_plan
        # the source-to-goal path is the only route and has a stated length
        route = nx.shortest_path(graph, source, goal)
        assert list(nx.all_simple_paths(graph, source, goal)) == [route]
        assert len(route) in lengths
        assert graph.out_degree(goal) == 0
        assert graph.in_degree(source) == 0 or source == centre
        assert centre in route
        assert nx.shortest_path_length(graph, centre, goal) >= min_plan
        # the other arms have stated lengths too: count nodes per path
        assert graph.number_of_nodes() == sum(len(p) for p in g.paths) - degree + 1
        assert all(len(p) in lengths for p in g.paths)


def test_easy_source_is_the_centre_with_three_arms_of_four_edges():
    for g in _graphs("easy", 200, seed=3):
        edges, source, goal = split_prompt(prompt_nodes(g))
        graph = nx.DiGraph(edges)
        assert graph.number_of_nodes() == 13
        assert _centre(graph) == source
        depth = Counter(nx.single_source_shortest_path_length(graph, source).values())
        assert depth == {0: 1, 1: 3, 2: 3, 3: 3, 4: 3}
        assert nx.shortest_path_length(graph, source, goal) == 4


@pytest.mark.parametrize("difficulty", ["medium", "hard"])
def test_lengths_and_join_locations_are_uniform(difficulty):
    degree, lengths, min_plan, _ = SHAPES[difficulty]
    graphs = _graphs(difficulty, 2000, seed=7)
    counts = Counter(len(p) for g in graphs for p in g.paths)
    n = sum(counts.values())
    assert set(counts) == lengths
    for length in lengths:  # U{lengths}: frequency 1/|lengths| within 5 standard errors
        p = 1 / len(lengths)
        assert abs(counts[length] / n - p) < 5 * (p * (1 - p) / n) ** 0.5
    longest = max(lengths)
    joins = Counter(p.index(g.centre) for g in graphs for p in g.paths if len(p) == longest)
    assert set(joins) == set(range(longest - min_plan))  # join_location in [0, len - min_plan)


def test_hard_draws_ids_from_all_56_nodes():
    seen = {n for g in _graphs("hard", 300) for p in g.paths for n in p}
    assert seen == set(range(56))


def test_source_goal_and_target_follow_path_zero():
    for g in _graphs("medium", 100, seed=11):
        assert g.source == g.paths[0][0] and g.goal == g.paths[0][-1]
        nodes = prompt_nodes(g)
        assert nodes[-2:] == [g.source, g.goal]
        target = target_nodes(g.path)
        assert target[0::2] == g.path[:-1] and target[1::2] == g.path[1:]
        assert len(target_side(g)) == len(target)


def test_junction_distances_by_hand():
    # path a b c d e with the centre c: edges ab, bc, cd, de
    assert junction_distances([10, 11, 12, 13, 14], 12) == [1, 0, 0, 1]
    assert junction_distances([10, 11, 12, 13, 14], 10) == [0, 1, 2, 3]
    assert junction_distances([10, 11, 12, 13], 11) == [0, 0, 1]
    g = StarGraph(edges=[], paths=[[5, 6, 7]], centre=5)
    assert target_side(g) == [0, 0, 1, 1]


def test_split_prompt_inverts_prompt_nodes():
    g = _graphs("hard", 1, seed=5)[0]
    edges, source, goal = split_prompt(prompt_nodes(g))
    assert edges == g.edges and (source, goal) == (g.source, g.goal)
    with pytest.raises(ValueError):
        split_prompt([1, 2, 3])
