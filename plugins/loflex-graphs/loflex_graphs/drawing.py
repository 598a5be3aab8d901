"""Drawing a star-graph prompt with its (generated or reference) path.

:func:`draw_graph` draws one graph on an Axes; :func:`draw_path_values` writes one
picture with the path edges coloured by a value per edge (e.g. when each edge was
inserted or revealed); :func:`compare_orders` puts several such panels side by side
on one colour scale (learned vs uniform vs oracle order), and
:func:`insertion_panels` computes their median insertion times.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib as mpl
import networkx as nx
from loflex.contracts import Example, Generated
from loflex.contracts.vocab import SPECIAL_TOKENS, Vocabulary
from matplotlib.figure import Figure

from loflex_graphs.graphs import split_prompt
from loflex_graphs.metrics import to_nodes


def _nodes(ids: Sequence[int], vocab: Vocabulary | None) -> list[int]:
    """Node ids of token ids; without a vocabulary node n is token id n + 4 (the domain's)."""
    if vocab is None:
        return [int(i) - len(SPECIAL_TOKENS) for i in ids if int(i) >= len(SPECIAL_TOKENS)]
    return [n for n in to_nodes(ids, vocab) if n is not None]


def draw_graph(example_or_generated: Example | Generated, ax, edge_colors=None, *,
               vocab: Vocabulary | None = None, cmap: str = "viridis",
               vmin: float | None = None, vmax: float | None = None):
    """Draw the prompt graph on ``ax`` with the path edges highlighted.

    Args:
        example_or_generated: an ``Example`` (its target is drawn) or a ``Generated``
            sample (its generated tokens are drawn); the graph comes from the prompt.
        ax: a matplotlib Axes.
        edge_colors: optional one value per path edge (e.g. its reveal step), mapped
            through ``cmap``; without it the path is drawn in red.
        vocab: the domain's vocabulary (default: node n has token id n + 4).
        cmap: matplotlib colormap name for ``edge_colors``.
        vmin, vmax: the colour range (default: the range of ``edge_colors``).

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
        lo = min(edge_colors, default=0) if vmin is None else vmin
        hi = max(edge_colors, default=1) if vmax is None else vmax
        norm = mpl.colors.Normalize(lo, hi if hi > lo else lo + 1)
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


def edge_values(values: Sequence[float]) -> list[float]:
    """Return one value per path edge: the later of its two tokens' values (``max``).

    An edge is complete once both of its node tokens are; a trailing odd token is dropped.
    """
    return [max(values[i], values[i + 1]) for i in range(0, len(values) - 1, 2)]


def _value_range(values: Sequence[float]) -> tuple[float, float]:
    """Times in [0, 1] keep the fixed range [0, 1]; other values (steps) their own range."""
    if values and min(values) >= 0.0 and max(values) <= 1.0:
        return 0.0, 1.0
    return min(values, default=0.0), max(values, default=1.0)


def draw_path_values(item: Example | Generated, values: Sequence[float], path: str | Path, *,
                     vocab: Vocabulary | None = None, title: str = "",
                     label: str = "insertion time", dpi: int = 100) -> Path:
    """Write a 6.1 x 4.2 inch picture of the graph, path edges coloured by their tokens' values.

    Args:
        item: the example or sample whose prompt (graph) and path are drawn.
        values: one value per path token; each edge gets the later of its two.
        path: the image file (PNG or SVG by suffix).
        vocab: the domain's vocabulary.
        title, label: caption and colour-bar label.
    """
    return compare_orders({title: (item, values)}, path, vocab=vocab, label=label, dpi=dpi,
                          panel=(5.0, 4.2))


def compare_orders(panels: Mapping[str, tuple[Example | Generated, Sequence[float]]],
                   path: str | Path, *, vocab: Vocabulary | None = None,
                   label: str = "insertion time", dpi: int = 100,
                   panel: tuple[float, float] = (4.2, 4.2)) -> Path:
    """Draw one graph per named panel, path edges coloured on one shared colour scale.

    Args:
        panels: ``{name: (example or sample, one value per path token)}``, e.g. the
            median insertion times of the learned, uniform and oracle orders
            (:func:`insertion_panels`) or the reveal steps of their samples.
        path: the image file.
        vocab: the domain's vocabulary.
        label: the colour-bar label.
        panel: (width, height) of one panel in inches; a 1.1 inch colour bar is added.

    Returns:
        ``path``; the image is ``(n * width + 1.1) x height`` inches at ``dpi``.
    """
    per_edge = {name: edge_values(list(values)) for name, (_, values) in panels.items()}
    lo, hi = _value_range([v for vals in per_edge.values() for v in vals])
    fig = Figure(figsize=(panel[0] * len(panels) + 1.1, panel[1]))
    width = panel[0] / (panel[0] * len(panels) + 1.1)
    mappable = None
    for k, (name, (item, _)) in enumerate(panels.items()):
        ax = fig.add_axes((k * width + 0.01, 0.02, width - 0.02, 0.88))
        mappable = draw_graph(item, ax, per_edge[name], vocab=vocab, vmin=lo, vmax=hi) or mappable
        ax.set_title(name, fontsize=9)
    if mappable is not None:
        fig.colorbar(mappable, cax=fig.add_axes((1 - 0.95 / fig.get_figwidth(), 0.15,
                                                 0.15 / fig.get_figwidth(), 0.7)), label=label)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path


def insertion_panels(example: Example, orders: Mapping[str, object],
                     grid: int = 64) -> dict[str, tuple[Example, list[float]]]:
    """Return ``{name: (example, median insertion time per target token)}`` for each order.

    Args:
        example: a star-graph example (its ``order_hint`` feeds orders such as ``star-oracle``).
        orders: ``{name: OrderDynamics or loflex.extension.assemble.Assembly}``.
        grid: times t each order is evaluated at.
    """
    from loflex.inspection.insertion_times import insertion_times

    return {name: (example, insertion_times(order, example, grid=grid).median)
            for name, order in orders.items()}
