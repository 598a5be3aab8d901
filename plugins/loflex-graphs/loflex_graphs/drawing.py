"""Drawing a star-graph prompt with its (generated or reference) path."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib as mpl
import networkx as nx
from loflex.domain import Example, Generated
from loflex.vocab import SPECIAL_TOKENS, Vocabulary

from loflex_graphs.graphs import split_prompt
from loflex_graphs.metrics import to_nodes


def _nodes(ids: Sequence[int], vocab: Vocabulary | None) -> list[int]:
    """Node ids of token ids; without a vocabulary node n is token id n + 4 (the domain's)."""
    if vocab is None:
        return [int(i) - len(SPECIAL_TOKENS) for i in ids if int(i) >= len(SPECIAL_TOKENS)]
    return [n for n in to_nodes(ids, vocab) if n is not None]


def draw_graph(example_or_generated: Example | Generated, ax, edge_colors=None, *,
               vocab: Vocabulary | None = None, cmap: str = "viridis"):
    """Draw the prompt graph on ``ax`` with the path edges highlighted.

    Args:
        example_or_generated: an ``Example`` (its target is drawn) or a ``Generated``
            sample (its generated tokens are drawn); the graph comes from the prompt.
        ax: a matplotlib Axes.
        edge_colors: optional one value per path edge (e.g. its reveal step), mapped
            through ``cmap``; without it the path is drawn in red.
        vocab: the domain's vocabulary (default: node n has token id n + 4).
        cmap: matplotlib colormap name for ``edge_colors``.

    Returns:
        A ``ScalarMappable`` for a colorbar when ``edge_colors`` is given, else None.
    """
    item = example_or_generated
    path_ids = item.tokens if isinstance(item, Generated) else item.target
    edges, source, goal = split_prompt(_nodes(item.prompt, vocab))
    path_nodes = _nodes(path_ids, vocab)
    path_edges = [(path_nodes[i], path_nodes[i + 1]) for i in range(0, len(path_nodes) - 1, 2)]
    graph = nx.DiGraph(edges)
    graph.add_nodes_from([source, goal])
    graph.add_edges_from(path_edges)
    pos = nx.spring_layout(graph.to_undirected(), seed=0)
    others = [e for e in graph.edges if e not in set(path_edges)]
    nx.draw_networkx_edges(graph, pos, edgelist=others, edge_color="lightgray", ax=ax)
    mappable = None
    if edge_colors is not None:
        assert len(edge_colors) == len(path_edges), "edge_colors needs one value per path edge"
        norm = mpl.colors.Normalize(min(edge_colors, default=0), max(edge_colors, default=1))
        mappable = mpl.cm.ScalarMappable(norm=norm, cmap=cmap)
        colors = [mappable.to_rgba(v) for v in edge_colors]
    else:
        colors = ["tab:red"] * len(path_edges)
    nx.draw_networkx_edges(graph, pos, edgelist=path_edges, edge_color=colors, width=2.5, ax=ax)
    fill = ["tab:green" if n == source else "tab:orange" if n == goal else "white"
            for n in graph.nodes]
    nx.draw_networkx_nodes(graph, pos, node_color=fill, edgecolors="black", node_size=260, ax=ax)
    nx.draw_networkx_labels(graph, pos, font_size=7, ax=ax)
    ax.set_axis_off()
    return mappable
