"""Star-graph traversal for loflex: the ``star-graph`` domain and the ``star-oracle`` order."""

from loflex_graphs.domain import StarGraphDomain
from loflex_graphs.graphs import PRESETS, Preset, StarGraph, generate_graph, junction_distances
from loflex_graphs.oracle import StarOracleOrder

__all__ = [
    "PRESETS",
    "Preset",
    "StarGraph",
    "StarGraphDomain",
    "StarOracleOrder",
    "generate_graph",
    "junction_distances",
]
