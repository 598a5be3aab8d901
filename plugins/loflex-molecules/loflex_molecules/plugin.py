"""Hook implementations of this plugin: the ``molecules`` domain, ``--fragment`` and the
pretrained molecule models."""

from __future__ import annotations

from loflex.extension.hookspecs import hookimpl


@hookimpl
def register_domains(register):
    """Register :class:`loflex_molecules.domain.MoleculeDomain`."""
    from loflex_molecules.domain import MoleculeDomain

    register(MoleculeDomain)


@hookimpl
def register_commands(commands):
    """Add ``--fragment SMILES`` to ``loflex sample``: the same as ``--prompt``."""
    commands.parser("sample").add_argument(
        "--fragment", dest="prompt", metavar="FRAGMENT",
        help="molecule fragment to grow from, in the model's representation (the same as "
        "--prompt; molecules plugin)")


PRETRAINED = {
    "molecules-loflexmdm": "LoFlexMDM (learned order) on BracketSAFE molecules (MOSES) as "
                           "fragment trees (de novo only), 4 x 128, CPU-trained from "
                           "molecules-flexmdm's run",
    "molecules-flexmdm": "FlexMDM's uniform order on BracketSAFE molecules (MOSES) as fragment "
                         "trees (de novo only), 4 x 128, CPU-trained",
    "molecules-atoms-loflexmdm": "LoFlexMDM on SAFE molecules (MOSES), atom-level tokens "
                                 "(takes GenMol's fragment prompts), 4 x 128, CPU-trained",
    "molecules-atoms-flexmdm": "FlexMDM's uniform order on SAFE molecules (MOSES), atom-level "
                               "tokens (takes GenMol's fragment prompts), 4 x 128, CPU-trained",
}


@hookimpl
def register_pretrained(register):
    """Register the models shipped in ``pretrained/`` (see each folder's card.md)."""
    for name, description in PRETRAINED.items():
        register(name, package=__package__, description=description)
