"""Fragment-tree tokens: a BracketSAFE molecule written as its tree of fragments.

SAFE's fragments are joined by acyclic bonds, so they form a tree; BracketSAFE names
each bond by a number ``<k>`` written in both fragments it joins. Fragment-tree tokens
write the same molecule without numbers. Starting from the first fragment, each fragment
is written as its template (:func:`loflex_molecules.fragment_tokens.template`) with the
attachment point to its parent marked ``<^>`` (the others stay ``<*>``), then one group
``{ ... }`` per ``<*>``, in the order they are written, holding the subtree bonded there:

    c1<1>cccc<2>c1.C<1><3>=O.N<3>C.CC<2>
    ->  [c1<*>cccc<*>c1] { [C<^><*>=O] { [N<^>C] } } { [CC<^>] }

A template seen at least ``min_count`` times in training is one token; a rarer one is
written with atom-level tokens (``<*>`` and ``<^>`` one token each). Pairing bonds is
then a matter of nesting: a well-formed sequence (as many groups as ``<*>``, one ``<^>``
per group's fragment) always joins into one connected molecule.

Joining tokens back numbers the bonds depth first and gives BracketSAFE text. A fragment
with fewer groups than ``<*>`` keeps a ``<*>``; a surplus group, or a group whose fragment
has no ``<^>``, leaves a number written once. Such text does not decode strictly, which is
how a malformed sample counts as invalid.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from loflex_molecules.fragment_tokens import ATTACHMENT, PLACEHOLDER, is_template, template
from loflex_molecules.tokenize import BASE_TOKENS, ring_token
from loflex_molecules.tokenize import tokenize as atom_tokens

PARENT = "<^>"
OPEN, CLOSE = "{", "}"
STRUCTURE = (PLACEHOLDER, PARENT, OPEN, CLOSE)
MARKS = re.compile(r"(<\*>|<\^>)")
# Every fragment-tree vocabulary holds these: atoms, bonds, branches and ring closures to
# spell a rare fragment, its attachment marks, and the group braces.
TREE_BASE_TOKENS = [t for t in BASE_TOKENS if t not in ("<", ">", ".")] + list(STRUCTURE)


def is_fragment_token(token: str) -> bool:
    """Whether ``token`` is a whole (marked) fragment template, not an atom or a mark."""
    return token not in STRUCTURE and is_template(token)


@dataclass
class _Node:
    """One fragment of a parsed tree: its pieces (atom-level text, source token) and children."""

    pieces: list[tuple[str, int]] = field(default_factory=list)
    children: list[_Node] = field(default_factory=list)
    start: int = 0  # the token index where the node begins
    groups_end: int = 0  # the token index after the node's last braced group


def marked_fragments(text: str) -> list[tuple[str, list[int]]]:
    """Return the fragments of BracketSAFE ``text`` in tree order, each as (marked template,
    child fragment indices into the returned list).

    Raises:
        ValueError: the bonds do not make one tree (a number not written exactly twice, a
            fragment bonded to itself, or fragments not all connected).
    """
    parts = text.split(".")
    slots = [ATTACHMENT.findall(part) for part in parts]
    ends: dict[str, list[int]] = {}
    for i, numbers in enumerate(slots):
        for number in numbers:
            ends.setdefault(number, []).append(i)
    for number, where in ends.items():
        if len(where) != 2 or where[0] == where[1]:
            raise ValueError(f"bond {number} does not join two fragments in {text!r}")
    out: list[tuple[str, list[int]]] = []
    seen = {0}

    def visit(i: int, parent_bond: str | None) -> None:
        shape, children = _marked(parts[i], parent_bond), []
        out.append((shape, children))
        for number in slots[i]:
            if number == parent_bond:
                continue
            child = next(j for j in ends[number] if j != i)
            if child in seen:
                raise ValueError(f"the fragments of {text!r} close a cycle")
            seen.add(child)
            children.append(len(out))
            visit(child, number)

    visit(0, None)
    if len(seen) != len(parts):
        raise ValueError(f"the fragments of {text!r} are not all connected")
    return out


def _marked(fragment: str, parent_bond: str | None) -> str:
    """The fragment's template with its bond to the parent written ``<^>``."""
    if parent_bond is None:
        return template(fragment)
    head, _, tail = fragment.partition(parent_bond)
    return template(head) + PARENT + template(tail)


def count_marked_templates(texts: Iterable[str]) -> Counter:
    """Count the marked templates of BracketSAFE ``texts`` (those that form a tree)."""
    counts: Counter = Counter()
    for text in texts:
        try:
            counts.update(shape for shape, _ in marked_fragments(text))
        except ValueError:
            continue
    return counts


class FragmentTreeTokenizer:
    """Tokenise BracketSAFE as a fragment tree, with the templates in ``templates`` as tokens.

    Args:
        templates: marked fragment templates written as one token.
        inline_last: write each fragment's last subtree without braces, right after its
            other groups, as SMILES continues its main chain (``fragment-smiles`` tokens):
            a chain of fragments then needs no braces at all. A node is then one template
            token or one run of atom-level tokens, so a spelled fragment whose last child is
            spelled too keeps that child in braces.
    """

    def __init__(self, templates: Iterable[str], inline_last: bool = False):
        self.templates = frozenset(templates)
        self.inline_last = inline_last
        assert all(is_fragment_token(t) for t in self.templates), "templates span atom tokens"

    def tokenize(self, text: str) -> list[str]:
        """Write BracketSAFE ``text`` as fragment-tree tokens.

        Raises:
            ValueError: the text's bonds do not make one tree (see :func:`marked_fragments`).
        """
        fragments = marked_fragments(text)
        out: list[str] = []

        def whole(i: int) -> bool:
            return fragments[i][0] in self.templates

        def write(i: int) -> None:
            shape, children = fragments[i]
            out.extend([shape] if whole(i) else _atom_level(shape))
            inline = self.inline_last and children and (whole(i) or whole(children[-1]))
            for child in children[:-1] if inline else children:
                out.append(OPEN)
                write(child)
                out.append(CLOSE)
            if inline:
                write(children[-1])

        write(0)
        return out

    def pieces(self, tokens: Sequence[str]) -> list[tuple[str, int]]:
        """Return the atom-level BracketSAFE pieces written by ``tokens``, each with the index
        of the token that wrote it (a bond number: its fragment's; ``.``: the next fragment's).
        """
        roots, position = [], 0
        while position < len(tokens):
            node, position = _parse(tokens, position, self)
            roots.append(node)
            if position < len(tokens) and tokens[position] == CLOSE:  # a brace never opened
                position += 1
        fragments: list[list[tuple[str, int]]] = []
        counter = itertools.count(1)
        for root in roots:
            _number(root, None, counter, fragments)
        out: list[tuple[str, int]] = []
        for k, fragment in enumerate(f for f in fragments if f):
            if k:
                out.append((".", fragment[0][1]))
            out += fragment
        return out

    def detokenize(self, tokens: Sequence[str]) -> str:
        """Join fragment-tree tokens back into BracketSAFE text (see the module docstring)."""
        return "".join(piece for piece, _ in self.pieces(tokens))

    def missing_groups(self, tokens: Sequence[str]) -> list[tuple[int, int]]:
        """Where groups are missing: ``(gap, count)`` for each fragment with ``count`` more
        ``<*>`` than groups, whose groups belong before token ``gap`` (after its last braced
        group, before a subtree written inline). [] unless ``tokens`` parse as one tree with
        every brace closed.
        """
        root = self._tree(tokens)
        out: list[tuple[int, int]] = []
        stack = [root] if root is not None else []
        while stack:
            node = stack.pop()
            free = _count(node, PLACEHOLDER) - len(node.children)
            if free > 0:
                out.append((node.groups_end, free))
            stack.extend(node.children)
        return sorted(out)

    def empty_fragments(self, tokens: Sequence[str]) -> list[tuple[int, tuple[int, int]]]:
        """Where a fragment is missing: ``(gap, marks)`` for each group (or root) that holds
        groups but no fragment, e.g. ``{ { ... } }``, whose fragment belongs before token
        ``gap`` with ``marks`` = (``<^>``, ``<*>``) counts: no ``<^>`` for the root, one
        otherwise, and one ``<*>`` per group. [] unless ``tokens`` parse as one tree with
        every brace closed.
        """
        return sorted((node.start, (int(depth > 0), len(node.children)))
                      for node, depth in self._nodes(tokens) if not node.pieces)

    def misfit_fragments(self, tokens: Sequence[str]) -> list[tuple[int, tuple[int, int]]]:
        """Which whole fragments do not fit their place: ``(index, marks)`` for each
        fragment token with fewer ``<*>`` than groups, or a ``<^>`` count other than its
        place's (none for the first fragment, one below it), where ``marks`` is what would
        fit: the place's ``<^>`` count and as many ``<*>`` as groups (or more, if it has
        more). A first fragment marked ``<^>`` is left to :meth:`orphan_root`; spelled
        fragments are left alone. [] unless ``tokens`` parse as one tree with every brace
        closed.
        """
        out = []
        for node, depth in self._nodes(tokens):
            sources = {source for _, source in node.pieces}
            if len(sources) != 1 or tokens[node.start] not in self.templates:
                continue
            parents, attachments = self.marks(tokens[node.start])
            if depth == 0 and parents > 0:
                continue
            if parents != int(depth > 0) or attachments < len(node.children):
                out.append((node.start, (int(depth > 0), max(attachments, len(node.children)))))
        return sorted(out)

    def orphan_root(self, tokens: Sequence[str]) -> bool:
        """Whether ``tokens`` parse as one tree whose first fragment is marked ``<^>``: bonded
        to a parent that is not there."""
        root = self._tree(tokens)
        return root is not None and _count(root, PARENT) > 0

    def _nodes(self, tokens: Sequence[str]) -> list[tuple[_Node, int]]:
        """Every node of the tree of ``tokens`` with its depth (the root's is 0); [] unless
        they parse as one tree with every brace closed."""
        root = self._tree(tokens)
        out, stack = [], [(root, 0)] if root is not None else []
        while stack:
            node, depth = stack.pop()
            out.append((node, depth))
            stack.extend((child, depth + 1) for child in node.children)
        return out

    def _tree(self, tokens: Sequence[str]) -> _Node | None:
        """The root of ``tokens`` when they form one tree with every brace closed, else None."""
        if not tokens or unclosed(tokens) != 0:
            return None
        root, end = _parse(tokens, 0, self)
        return root if end == len(tokens) else None

    def marks(self, token: str) -> tuple[int, int]:
        """``(parents, attachments)``: the ``<^>`` and ``<*>`` marks of a whole template
        (``(-1, -1)`` for any other token)."""
        if token not in self.templates:
            return -1, -1
        return token.count(PARENT), token.count(PLACEHOLDER)

    def spell(self, token: str) -> list[str]:
        """The atom-level pieces of one token (a template's, or the token itself)."""
        return _atom_level(token) if token in self.templates else [token]

    def ends_node(self, tokens: Sequence[str], i: int, start: int) -> bool:
        """Whether the fragment begun at ``start`` ends before token ``i``."""
        if tokens[i] in (OPEN, CLOSE):
            return True
        if not self.inline_last or i == start:
            return False
        return tokens[start] in self.templates or tokens[i] in self.templates


def _count(node: _Node, mark: str) -> int:
    """How many pieces of ``node``'s fragment are ``mark``."""
    return sum(piece == mark for piece, _ in node.pieces)


def stray_close(tokens: Sequence[str]) -> int | None:
    """The index of the first ``}`` of ``tokens`` that closes no group, or None."""
    depth = 0
    for i, token in enumerate(tokens):
        depth += (token == OPEN) - (token == CLOSE)
        if depth < 0:
            return i
    return None


def unclosed(tokens: Sequence[str]) -> int:
    """How many ``{`` of ``tokens`` no ``}`` closes; -1 when a ``}`` closes nothing."""
    depth = 0
    for token in tokens:
        depth += (token == OPEN) - (token == CLOSE)
        if depth < 0:
            return -1
    return depth


def _atom_level(shape: str) -> list[str]:
    """Atom-level tokens of a marked template, ``<*>`` and ``<^>`` one token each."""
    out: list[str] = []
    for chunk in MARKS.split(shape):
        out += [chunk] if chunk in (PLACEHOLDER, PARENT) else atom_tokens(chunk)
    return out


def _parse(tokens: Sequence[str], start: int, tokenizer: FragmentTreeTokenizer
           ) -> tuple[_Node, int]:
    """Parse one fragment and its groups from ``start``; return it and the next position."""
    node, i = _Node(start=start), start
    while i < len(tokens) and not tokenizer.ends_node(tokens, i, start):
        node.pieces += [(piece, i) for piece in tokenizer.spell(tokens[i])]
        i += 1
    while i < len(tokens) and tokens[i] == OPEN:
        child, i = _parse(tokens, i + 1, tokenizer)
        node.children.append(child)
        if i < len(tokens) and tokens[i] == CLOSE:
            i += 1
    node.groups_end = i
    if tokenizer.inline_last and i < len(tokens) and tokens[i] != CLOSE:
        child, i = _parse(tokens, i, tokenizer)  # the last subtree, written inline
        node.children.append(child)
    return node, i


def _number(node: _Node, parent_bond: str | None, counter, out: list) -> None:
    """Append ``node``'s fragment (and its subtree's) with bond numbers filled in, depth first."""
    bonds = [f"<{ring_token(next(counter))}>" for _ in node.children]
    pieces, free, parent_done = [], iter(bonds), parent_bond is None
    for piece, source in node.pieces:
        if piece == PARENT and not parent_done:
            pieces.append((parent_bond, source))
            parent_done = True
        elif piece == PLACEHOLDER:
            pieces.append((next(free, PLACEHOLDER), source))
        else:
            pieces.append((piece, source))
    out.append(pieces)
    for child, bond in zip(node.children, bonds):
        _number(child, bond, counter, out)
