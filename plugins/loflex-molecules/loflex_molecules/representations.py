"""Molecule string representations: SAFE, BracketSAFE and SMILES, both directions.

SAFE (Noutahi et al. 2024) writes a molecule as BRICS fragments joined by ``.``;
the bonds between fragments are ring-bond numbers that occur once in each of the
two fragments they join. BracketSAFE (GenMol) writes those inter-fragment numbers
as ``<n>`` (numbered 1, 2, ... in order of appearance) while ring closures inside a
fragment stay plain digits, so the two roles never share a token sequence.

Decoding follows GenMol (metrics.md section 1): the lenient decoder drops the
fragments that do not decode on their own and keeps the largest component; the
strict decoder accepts only a string that decodes as written into one connected
molecule.
"""

from __future__ import annotations

from collections import Counter

import safe as sf
from rdkit import Chem, RDLogger

from loflex_molecules.tokenize import is_ring_number, ring_token, ring_value, tokenize

REPRESENTATIONS = ("safe", "bracket-safe", "smiles")
RDLogger.DisableLog("rdApp.*")
# RDKit recurses along chains and crashes the process (segfault) near 20,000 atoms; no
# string longer than this reaches RDKit or SAFE (drug-like SMILES have under 100).
MAX_SMILES_CHARS = 2000


def too_long(text: str) -> bool:
    """Whether ``text`` is longer than RDKit and SAFE are trusted with."""
    return len(text) > MAX_SMILES_CHARS


def parse(smiles: str):
    """RDKit's molecule for ``smiles``; None when it does not parse or is too long."""
    return None if not smiles or too_long(smiles) else Chem.MolFromSmiles(smiles)


def encode_smiles(smiles: str, representation: str, seed: int | None = None) -> str:
    """Encode a SMILES string in ``representation``.

    Args:
        smiles: a molecule RDKit can parse.
        representation: "safe", "bracket-safe" or "smiles".
        seed: None for the canonical string; an integer for a randomised one
            (random atom order, and for SAFE a random fragment order).

    Raises:
        ValueError: RDKit or SAFE cannot encode the molecule, or it is too long.
    """
    if too_long(smiles):
        raise ValueError(f"the SMILES has {len(smiles)} characters, more than "
                         f"{MAX_SMILES_CHARS}")
    if representation == "smiles":
        mol = Chem.MolFromSmiles(smiles)
        if mol is None:
            raise ValueError(f"RDKit cannot parse {smiles!r}")
        if seed is None:
            return Chem.MolToSmiles(mol)
        order = _permutation(mol.GetNumAtoms(), seed)
        return Chem.MolToSmiles(Chem.RenumberAtoms(mol, order), canonical=False)
    try:
        if seed is None:
            safe = sf.encode(smiles, allow_empty=True)
        else:
            safe = sf.encode(smiles, canonical=False, randomize=True, seed=seed, allow_empty=True)
    except Exception as exc:  # safe raises several exception types
        raise ValueError(f"SAFE cannot encode {smiles!r}: {exc}") from None
    return safe_to_bracket(safe) if representation == "bracket-safe" else safe


def _permutation(n: int, seed: int) -> list[int]:
    import numpy as np

    return np.random.default_rng(seed).permutation(n).tolist()


def fragments(tokens: list[str]) -> list[list[str]]:
    """Split a token list at ``.`` into fragments (``.`` itself dropped)."""
    parts: list[list[str]] = [[]]
    for token in tokens:
        if token == ".":
            parts.append([])
        else:
            parts[-1].append(token)
    return parts


def attachment_numbers(fragment: list[str]) -> set[int]:
    """Return the ring-bond numbers of ``fragment`` that leave it (odd count inside it)."""
    counts = Counter(ring_value(tok) for tok in fragment if is_ring_number(tok))
    odd = {value for value, count in counts.items() if count % 2 == 1}
    reused = sorted(value for value in odd if counts[value] > 1)
    if reused:
        raise ValueError(f"ring-bond number {reused[0]} is both a ring closure and an attachment")
    return odd


def safe_to_bracket(safe: str) -> str:
    """Rewrite a SAFE string as BracketSAFE.

    Every inter-fragment ring-bond number (one that occurs an odd number of times
    in its fragment) becomes ``<k>``, with k = 1, 2, ... in order of first
    appearance; ring closures inside a fragment keep their digits.

    Raises:
        ValueError: a number is used both as a ring closure and as an attachment.
    """
    out: list[str] = []
    renumber: dict[int, int] = {}
    for i, fragment in enumerate(fragments(tokenize(safe))):
        if i:
            out.append(".")
        attach = attachment_numbers(fragment)
        for token in fragment:
            if is_ring_number(token) and ring_value(token) in attach:
                new = renumber.setdefault(ring_value(token), len(renumber) + 1)
                out += ["<", ring_token(new), ">"]
            else:
                out.append(token)
    return "".join(out)


def bracket_to_safe(text: str) -> str:
    """Rewrite BracketSAFE as SAFE: ``<k>`` becomes ring-bond number k + m.

    m is the largest ring-closure number written outside brackets, so attachment
    numbers never collide with ring closures. Malformed brackets are left as they
    are (the result then fails to decode, which is how invalid samples are counted).
    """
    tokens = tokenize(text)
    inner = [ring_value(tok) for tok in _outside_brackets(tokens) if is_ring_number(tok)]
    offset = max(inner, default=0)
    out: list[str] = []
    i = 0
    while i < len(tokens):
        if _bracket_at(tokens, i):
            out.append(ring_token(ring_value(tokens[i + 1]) + offset))
            i += 3
        else:
            out.append(tokens[i])
            i += 1
    return "".join(out)


def _bracket_at(tokens: list[str], i: int) -> bool:
    return (
        i + 2 < len(tokens)
        and tokens[i] == "<"
        and is_ring_number(tokens[i + 1])
        and tokens[i + 2] == ">"
    )


def _outside_brackets(tokens: list[str]) -> list[str]:
    kept, i = [], 0
    while i < len(tokens):
        if _bracket_at(tokens, i):
            i += 3
        else:
            kept.append(tokens[i])
            i += 1
    return kept


def to_safe(text: str, representation: str) -> str:
    """Return the SAFE form of ``text`` (identity for SAFE, the text for SMILES)."""
    return bracket_to_safe(text) if representation == "bracket-safe" else text


def decode_lenient(text: str, representation: str) -> str | None:
    """Decode leniently to canonical SMILES (GenMol's ``safe_to_smiles(fix=True)``).

    Fragments that do not decode on their own are dropped, the rest is decoded,
    and the largest component (longest SMILES) is kept. Returns None when nothing
    decodes.
    """
    if not text or too_long(text):
        return None
    if representation == "smiles":
        parts = [p for p in text.split(".") if parse(p) is not None]
        joined = ".".join(parts)
        smiles = canonical(joined) if parts else None
    else:
        safe = to_safe(text, representation)
        parts = [p for p in safe.split(".") if sf.decode(p, ignore_errors=True) is not None]
        smiles = sf.decode(".".join(parts), canonical=True, ignore_errors=True) if parts else None
    if not smiles:
        return None
    return canonical(sorted(smiles.split("."), key=len)[-1])


def decode_strict(text: str, representation: str) -> str | None:
    """Decode strictly: the whole string as written must be one connected molecule."""
    if not text or too_long(text):
        return None
    if representation == "smiles":
        smiles = canonical(text)
    else:
        safe = to_safe(text, representation)
        smiles = sf.decode(safe, canonical=True, fix=False, ignore_errors=True)
        smiles = canonical(smiles) if smiles else None
    if not smiles or "." in smiles:
        return None
    return smiles


def canonical(smiles: str) -> str | None:
    """Return RDKit's canonical isomeric SMILES, or None if it does not parse or is too long."""
    mol = parse(smiles)
    if mol is None or mol.GetNumAtoms() == 0:
        return None
    return Chem.MolToSmiles(mol)
