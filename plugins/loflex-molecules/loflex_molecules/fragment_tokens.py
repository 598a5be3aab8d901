"""Fragment tokens: a BracketSAFE fragment written as one token plus its attachment numbers.

BracketSAFE writes a molecule as fragments joined by ``.``, each fragment with its
attachment points ``<k>`` (the bonds to other fragments) and its own ring closures.
A fragment's *template* is its text with every ``<k>`` replaced by ``<*>``; e.g.
``c1<2>ccc<1>cc1`` has the template ``c1<*>ccc<*>cc1``. Templates frequent in the
training data become single tokens, so a ring is written whole, never atom by atom.
A fragment is then tokenised as

    [template] <k1> <k2> ...     (its attachment numbers in the order written)

and a fragment whose template is not a token is written with the atom-level tokens of
:mod:`loflex_molecules.tokenize`, its attachments as single ``<k>`` tokens. Fragments
stay separated by ``.``.

Joining tokens back fills each template's ``<*>`` with the attachment tokens that
follow it, in order; a placeholder left without one stays ``<*>`` (the text then does
not decode, which is how such a sample counts as invalid).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

from loflex_molecules.tokenize import BASE_TOKENS, ring_token
from loflex_molecules.tokenize import tokenize as atom_tokens

PLACEHOLDER = "<*>"
ATTACHMENT = re.compile(r"<(?:\d|%\d{2}|%\(\d+\))>")  # <7>, <%12>, <%(123)>
MOST_ATTACHMENTS = 20
# Every fragment vocabulary holds these, so any BracketSAFE string of drug-like size
# and the atom-level spelling of a rare fragment stay encodable.
FRAGMENT_BASE_TOKENS = [t for t in BASE_TOKENS if t not in ("<", ">")] + [
    f"<{ring_token(k)}>" for k in range(1, MOST_ATTACHMENTS + 1)
]


def template(fragment: str) -> str:
    """Return ``fragment`` with every attachment ``<k>`` replaced by ``<*>``."""
    return ATTACHMENT.sub(PLACEHOLDER, fragment)


def count_templates(texts: Iterable[str]) -> Counter:
    """Count the fragment templates of BracketSAFE ``texts``."""
    counts: Counter = Counter()
    for text in texts:
        counts.update(template(part) for part in text.split("."))
    return counts


def is_template(token: str) -> bool:
    """Whether ``token`` is a whole fragment (more than one atom-level token, not ``<k>``)."""
    return ATTACHMENT.fullmatch(token) is None and len(atom_tokens(token)) > 1


class FragmentTokenizer:
    """Tokenise BracketSAFE with whole-fragment tokens for the templates in ``templates``.

    Args:
        templates: fragment templates written as one token (see :func:`template`).
    """

    def __init__(self, templates: Iterable[str]):
        self.templates = frozenset(templates)
        assert all(is_template(t) for t in self.templates), "templates span several atom tokens"

    def tokenize(self, text: str) -> list[str]:
        """Split BracketSAFE ``text`` into fragment, attachment, ``.`` and atom-level tokens."""
        out: list[str] = []
        for i, part in enumerate(text.split(".")):
            if i:
                out.append(".")
            shape = template(part)
            if shape in self.templates:
                out.append(shape)
                out += ATTACHMENT.findall(part)
            else:
                out += _atom_level(part)
        return out

    def pieces(self, tokens: Sequence[str]) -> list[tuple[str, int]]:
        """Return the atom-level tokens written by ``tokens``, each with its source index.

        A template's text is filled with the attachment tokens right after it, which
        then write nothing of their own; joining the pieces gives the BracketSAFE text.
        """
        out: list[tuple[str, int]] = []
        i = 0
        while i < len(tokens):
            token = tokens[i]
            if not is_template(token):
                out.append((token, i))
                i += 1
                continue
            text, after = _fill(token, tokens, i + 1)
            out += [(piece, i) for piece in _atom_level(text)]
            i = after
        return out

    def detokenize(self, tokens: Sequence[str]) -> str:
        """Join tokens back into BracketSAFE text (see the module docstring)."""
        return "".join(piece for piece, _ in self.pieces(tokens))


def _atom_level(fragment: str) -> list[str]:
    """Atom-level tokens of a BracketSAFE fragment, each ``<k>`` and ``<*>`` one token."""
    out: list[str] = []
    for chunk in re.split(rf"({ATTACHMENT.pattern}|<\*>)", fragment):
        if ATTACHMENT.fullmatch(chunk) or chunk == PLACEHOLDER:
            out.append(chunk)
        elif chunk:
            out += atom_tokens(chunk)
    return out


def _fill(shape: str, tokens: Sequence[str], start: int) -> tuple[str, int]:
    """Fill ``shape``'s placeholders with the attachment tokens from ``start``.

    Returns the text and the index of the first token not consumed.
    """
    parts = shape.split(PLACEHOLDER)
    text, i = parts[0], start
    for rest in parts[1:]:
        if i < len(tokens) and ATTACHMENT.fullmatch(tokens[i]):
            text += tokens[i]
            i += 1
        else:
            text += PLACEHOLDER
        text += rest
    return text, i
