"""Hook implementations of this plugin: the star-graph domain and the star-oracle order."""

from __future__ import annotations

from loflex.hookspecs import hookimpl

from loflex_graphs.domain import StarGraphDomain
from loflex_graphs.oracle import StarOracleOrder


@hookimpl
def register_domains(register):
    """Register the ``star-graph`` domain."""
    register(StarGraphDomain)


@hookimpl
def register_order_dynamics(register):
    """Register the ``star-oracle`` fixed order."""
    register(StarOracleOrder)
