"""Regex tokenisation of SMILES, SAFE and BracketSAFE strings.

One token per bracket atom (``[nH]``, ``[C@@H]``, ``[13*]``), two-letter halogen,
organic-subset or aromatic atom, bond or branch symbol, ring-bond number (``1``,
``%12``, ``%(123)``), fragment separator ``.`` and BracketSAFE delimiter (``<``,
``>``). Any other character becomes a token of its own, so no character is ever
lost: ``"".join(tokenize(s)) == s`` for every string.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

TOKEN_PATTERN = re.compile(
    r"\[[^\[\]]+\]"  # bracket atom
    r"|Br|Cl"  # two-letter organic-subset atoms
    r"|%\(\d+\)|%\d{2}"  # ring-bond numbers >= 10
    r"|[BCNOPSFI]|[bcnops]"  # organic subset and aromatic atoms
    r"|[<>]"  # BracketSAFE attachment delimiters
    r"|[()\.=#\-+\\/:~@?*$]"  # branches, fragment separator, bonds
    r"|\d"  # ring-bond numbers 0-9
    r"|[\s\S]",  # anything else, one character at a time
)
RING_NUMBER = re.compile(r"^(?:\d|%\d{2}|%\(\d+\))$")

# Tokens every vocabulary holds, so prompts and randomised encodings of common
# chemistry stay encodable even when the training data never used them.
BASE_TOKENS = (
    [str(d) for d in range(1, 10)]
    + [f"%{n}" for n in range(10, 20)]
    + ["(", ")", ".", "=", "#", "-", "/", "\\", "<", ">"]
    + ["B", "C", "N", "O", "P", "S", "F", "I", "Cl", "Br", "b", "c", "n", "o", "p", "s"]
)


def tokenize(text: str) -> list[str]:
    """Split ``text`` into tokens; joining them gives ``text`` back exactly."""
    return TOKEN_PATTERN.findall(text)


def detokenize(tokens: Sequence[str]) -> str:
    """Join tokens back into a string."""
    return "".join(tokens)


def is_ring_number(token: str) -> bool:
    """Return whether ``token`` is a ring-bond number (``7``, ``%12``, ``%(123)``)."""
    return RING_NUMBER.match(token) is not None


def ring_value(token: str) -> int:
    """Return the integer of a ring-bond token: ``7`` -> 7, ``%12`` -> 12, ``%(123)`` -> 123."""
    return int(token.strip("%()"))


def ring_token(value: int) -> str:
    """Format a ring-bond number as SMILES writes it: 7, %12 or %(123)."""
    assert value >= 0, f"ring-bond numbers are non-negative, got {value}"
    if value < 10:
        return str(value)
    if value < 100:
        return f"%{value}"
    return f"%({value})"


class AtomTokenizer:
    """The atom-level tokenizer as an object (the interface :class:`FragmentTokenizer` shares)."""

    def tokenize(self, text: str) -> list[str]:
        """Split ``text`` into atom-level tokens."""
        return tokenize(text)

    def pieces(self, tokens: Sequence[str]) -> list[tuple[str, int]]:
        """Return each token with its own index (every token writes itself)."""
        return [(token, i) for i, token in enumerate(tokens)]

    def detokenize(self, tokens: Sequence[str]) -> str:
        """Join tokens back into a string."""
        return detokenize(tokens)
