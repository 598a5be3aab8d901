"""loflex-molecules: the ``molecules`` domain (SAFE, BracketSAFE, SMILES) for loflex."""

__all__ = ["MoleculeDomain"]


def __getattr__(name):
    if name == "MoleculeDomain":
        from loflex_molecules.domain import MoleculeDomain

        return MoleculeDomain
    raise AttributeError(name)
