"""Star graphs: the three difficulty presets, random generation and serialisation.

A star graph is ``degree`` paths that all pass through one shared centre node (the
junction). Path 0 is the target: the task is to write it, edge by edge, from its first
node (the source) to its last (the goal), given the shuffled edge list (docs/method.md §6.1).

Generation uses :class:`random.Random` only (no networkx) so that 50k graphs take
seconds; networkx is used for validity checks and drawing.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

Edge = tuple[int, int]


@dataclass(frozen=True)
class Preset:
    """The shape of one difficulty.

    Attributes:
        degree: number of paths through the centre.
        min_length: shortest path, in nodes.
        max_length: longest path, in nodes.
        min_plan_length: nodes that always follow the centre on a path; the centre sits
            at ``join_location`` drawn uniformly from ``[0, length - min_plan_length)``.
        num_nodes: node ids are drawn without replacement from ``0 .. num_nodes - 1``.
    """

    degree: int
    min_length: int
    max_length: int
    min_plan_length: int
    num_nodes: int

    @property
    def max_edges(self) -> int:
        """Most edges a graph can have: ``degree * (max_length - 1)``."""
        return self.degree * (self.max_length - 1)

    @property
    def max_prompt_length(self) -> int:
        """Longest prompt in tokens: two per edge, then ``source goal``."""
        return 2 * self.max_edges + 2

    @property
    def max_target_length(self) -> int:
        """Longest target in tokens: two per edge of the longest path."""
        return 2 * (self.max_length - 1)


# easy: every path has 5 nodes and starts at the centre (join_location in [0, 5 - 4) = {0}),
# so the source is the centre and 3 * 4 + 1 = 13 node ids are used.
PRESETS: dict[str, Preset] = {
    "easy": Preset(degree=3, min_length=5, max_length=5, min_plan_length=4, num_nodes=20),
    "medium": Preset(degree=3, min_length=3, max_length=6, min_plan_length=2, num_nodes=20),
    "hard": Preset(degree=5, min_length=6, max_length=12, min_plan_length=5, num_nodes=56),
}


@dataclass
class StarGraph:
    """One star-graph instance.

    Attributes:
        edges: every edge ``(u, v)`` written in path direction, shuffled.
        paths: the ``degree`` paths as node lists; ``paths[0]`` is the target path.
        centre: the node shared by every path (the junction).
    """

    edges: list[Edge]
    paths: list[list[int]]
    centre: int

    @property
    def path(self) -> list[int]:
        """The target path, source first."""
        return self.paths[0]

    @property
    def source(self) -> int:
        """First node of the target path."""
        return self.paths[0][0]

    @property
    def goal(self) -> int:
        """Last node of the target path."""
        return self.paths[0][-1]


def generate_graph(rng: random.Random, preset: Preset) -> StarGraph:
    """Draw one star graph.

    Each path's length is uniform on ``{min_length .. max_length}`` nodes and its centre
    index uniform on ``[0, length - min_plan_length)``; node ids are distinct, drawn
    without replacement (``sum(lengths) - degree + 1`` of them); edges are shuffled.
    """
    lengths = [rng.randint(preset.min_length, preset.max_length) for _ in range(preset.degree)]
    joins = [rng.randrange(length - preset.min_plan_length) for length in lengths]
    nodes = rng.sample(range(preset.num_nodes), sum(lengths) - preset.degree + 1)
    centre, start = nodes[0], 1
    paths = []
    for length, join in zip(lengths, joins):
        path = nodes[start : start + length - 1]
        start += length - 1
        path.insert(join, centre)
        paths.append(path)
    edges = [(p[k], p[k + 1]) for p in paths for k in range(len(p) - 1)]
    rng.shuffle(edges)
    return StarGraph(edges=edges, paths=paths, centre=centre)


def junction_distances(path: list[int], centre: int) -> list[int]:
    """Return, per edge ``path[k] -> path[k+1]``, its distance in edges from the centre.

    The distance is the number of path edges between the centre node and the edge's
    nearer endpoint: 0 for an edge touching the centre, growing toward both path ends.
    """
    j = path.index(centre)
    return [j - k - 1 if k < j else k - j for k in range(len(path) - 1)]


def prompt_nodes(graph: StarGraph) -> list[int]:
    """Return the prompt as node ids: ``u1 v1 u2 v2 ... source goal``."""
    flat = [node for edge in graph.edges for node in edge]
    return flat + [graph.source, graph.goal]


def target_nodes(path: list[int]) -> list[int]:
    """Return the target as node ids: the path as consecutive edges ``p0 p1 p1 p2 ...``."""
    return [node for k in range(len(path) - 1) for node in (path[k], path[k + 1])]


def target_side(graph: StarGraph) -> list[int]:
    """Return per target token the junction distance of its edge (both tokens share it)."""
    return [d for d in junction_distances(graph.path, graph.centre) for _ in range(2)]


def split_prompt(nodes: list[int]) -> tuple[list[Edge], int, int]:
    """Invert :func:`prompt_nodes`: return ``(edges, source, goal)``.

    Raises:
        ValueError: the prompt has an odd number of nodes or fewer than two.
    """
    if len(nodes) < 2 or len(nodes) % 2:
        raise ValueError(f"a star-graph prompt has an even number >= 2 of nodes, got {len(nodes)}")
    body = nodes[:-2]
    edges = [(body[i], body[i + 1]) for i in range(0, len(body), 2)]
    return edges, nodes[-2], nodes[-1]


def split_seed(seed: int, difficulty: str, split: str) -> int:
    """Return the seed of one split's random stream (disjoint streams per split)."""
    digest = hashlib.sha256(f"loflex/star-graph/{difficulty}/{seed}/{split}".encode()).digest()
    return int.from_bytes(digest[:8], "little")
