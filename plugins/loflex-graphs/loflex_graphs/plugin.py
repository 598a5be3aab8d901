"""Hook implementations of this plugin: the star-graph domain, the star-oracle order and
the pretrained star-graph models."""

from __future__ import annotations

from loflex.extension.hookspecs import hookimpl

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


PRETRAINED = {
    "star-easy-loflexmdm": "LoFlexMDM (learned order) on easy star graphs, 4 x 128, CPU-trained "
                           "from star-medium-flexmdm's generator for 2,000 steps",
    "star-easy-flexmdm": "FlexMDM (uniform order) on easy star graphs, 4 x 128, CPU-trained "
                         "from star-medium-flexmdm for 8,000 steps",
    "star-medium-loflexmdm": "LoFlexMDM (learned order) on medium star graphs, 4 x 128, "
                             "CPU-trained from star-medium-flexmdm's generator at step 13,500 "
                             "for 10,000 steps",
    "star-medium-flexmdm": "FlexMDM (uniform order) on medium star graphs, 4 x 128, CPU-trained",
}


@hookimpl
def register_pretrained(register):
    """Register the models shipped in ``pretrained/`` (see each folder's card.md)."""
    for name, description in PRETRAINED.items():
        register(name, package=__package__, description=description)
