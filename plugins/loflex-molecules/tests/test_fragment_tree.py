"""Fragment-tree tokens: a molecule as its tree of fragments, bonds written by nesting."""

from __future__ import annotations

import loflex
import pytest
import torch
from loflex import DataError, Domain
from loflex.contracts import Insertion, Refill
from loflex.contracts.vocab import MASK
from loflex.extension.testing import check_domain
from loflex_molecules.domain import MoleculeDomain
from loflex_molecules.fragment_tree import (
    FragmentTreeTokenizer,
    count_marked_templates,
    is_fragment_token,
    marked_fragments,
    stray_close,
    unclosed,
)
from loflex_molecules.representations import decode_strict, encode_smiles
from rdkit import Chem

# 3-ethyl-N-methylbenzamide: ring (root), amide carbon, N-methyl, ethyl
TEXT = "c1<1>cccc<2>c1.C<1><3>=O.N<3>C.CC<2>"
SMILES = Chem.CanonSmiles("CCc1cccc(C(=O)NC)c1")
RING, AMIDE, AMINE, ETHYL = "c1<*>cccc<*>c1", "C<^><*>=O", "N<^>C", "CC<^>"
TREE = [RING, "{", AMIDE, "{", AMINE, "}", "}", "{", ETHYL, "}"]


def test_fragments_in_tree_order_with_the_parent_bond_marked():
    assert marked_fragments(TEXT) == [(RING, [1, 3]), (AMIDE, [2]), (AMINE, []), (ETHYL, [])]
    assert count_marked_templates([TEXT, "CC<1>.CC<1>"]) == {
        RING: 1, AMIDE: 1, AMINE: 1, ETHYL: 2, "CC<*>": 1}


@pytest.mark.parametrize("text, problem", [
    ("CC<1>.CC<2>", "does not join two fragments"),
    ("C<1><1>C", "does not join two fragments"),
    ("CC<1>.C<1>C<2>.C<2>C<3>.C<3>C<1>", "does not join two fragments"),
    ("CC<1>.CC<1>.CC", "not all connected"),
])
def test_texts_that_are_not_one_tree_are_refused(text, problem):
    with pytest.raises(ValueError, match=problem):
        marked_fragments(text)


def test_known_templates_are_one_token_and_the_tree_joins_back():
    tokenizer = FragmentTreeTokenizer([RING, AMIDE, AMINE, ETHYL])
    assert tokenizer.tokenize(TEXT) == TREE
    assert tokenizer.detokenize(TREE) == TEXT  # bonds numbered depth first
    assert decode_strict(tokenizer.detokenize(TREE), "bracket-safe") == SMILES


def test_rare_templates_are_spelled_atom_by_atom():
    tokenizer = FragmentTreeTokenizer([RING])
    tokens = tokenizer.tokenize(TEXT)
    assert tokens[:2] == [RING, "{"] and tokens[2:6] == ["C", "<^>", "<*>", "="]
    assert decode_strict(tokenizer.detokenize(tokens), "bracket-safe") == SMILES


@pytest.mark.parametrize("tokens", [
    [RING, "{", AMIDE, "{", AMINE, "}", "}"],  # a <*> without its group
    [RING, "{", AMIDE, "{", AMINE, "}", "}", "{", ETHYL, "}", "{", ETHYL, "}"],  # one too many
    [RING, "{", AMIDE, "{", "CC", "}", "}", "{", ETHYL, "}"],  # a child without <^>
    [AMINE, "{", ETHYL, "}"],  # a root with a parent mark, a group without a <*>
    [RING, "{", AMIDE, "}", "}", "{", AMINE, "}"],  # a brace never opened
])
def test_malformed_trees_join_into_text_that_does_not_decode(tokens):
    tokenizer = FragmentTreeTokenizer([RING, AMIDE, AMINE, ETHYL])
    text = tokenizer.detokenize(tokens)
    assert decode_strict(text, "bracket-safe") is None


def test_an_unclosed_group_closes_at_the_end():
    tokenizer = FragmentTreeTokenizer([RING, AMIDE, AMINE, ETHYL])
    assert tokenizer.detokenize(TREE[:-1]) == TEXT


def test_pieces_point_at_the_token_that_wrote_them():
    tokenizer = FragmentTreeTokenizer([RING, AMIDE, AMINE, ETHYL])
    pieces = tokenizer.pieces(TREE)
    atoms = [source for piece, source in pieces if piece.isalpha()]
    assert atoms == [0] * 6 + [2, 2] + [4, 4] + [8, 8]  # ring, C and O, N and C, C and C
    assert "".join(p for p, _ in pieces) == TEXT


def test_structure_tokens_are_not_templates():
    assert is_fragment_token(RING) and is_fragment_token(AMINE)
    assert not any(is_fragment_token(t) for t in ("<*>", "<^>", "{", "}", "<3>", "C", "Cl"))


@pytest.fixture(scope="module")
def tree_domain(small_csv, tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    return loflex.build(Domain, {"name": "molecules", "options": dict(
        path=str(small_csv), column="smiles", representation="bracket-safe",
        tokens="fragment-tree", fragment_min_count=3, cache_dir=str(cache), workers=1,
        fcd=False)})


def test_tree_domain_examples_decode_to_their_molecules(tree_domain):
    splits = tree_domain.splits()
    examples = tree_domain.examples("train")
    assert len(examples) == len(splits["train"])  # every MOSES molecule is one tree
    for ex, smiles in zip(examples[:100], splits["train"].smiles):
        assert tree_domain.to_smiles(ex.target, strict=True) == smiles
        assert tree_domain.encode(tree_domain.to_text(ex.target)) == ex.target
    assert "<*>" in tree_domain.vocab and "{" in tree_domain.vocab and "." not in \
        tree_domain.vocab


def test_tree_domain_vocabulary_and_contract(tree_domain):
    texts = [encode_smiles(s, "bracket-safe") for s in tree_domain.splits()["train"].smiles]
    frequent = {t for t, n in count_marked_templates(texts).items()
                if n >= 3 and is_fragment_token(t)}
    restored = MoleculeDomain(tree_domain.options, state=tree_domain.state_dict())
    assert restored.tokenizer.templates == frequent
    check_domain(tree_domain, splits=("train", "test"))


def test_tree_domain_refuses_fragment_prompts_with_the_fix(tree_domain, tmp_path):
    with pytest.raises(DataError, match="for fragment prompts use a model with tokens = "
                       "'fragments', such as the shipped molecules-atoms-loflexmdm"):
        tree_domain.parse_prompt("[*]c1ccccc1")
    example = tree_domain.examples("test")[0]
    values = [i / len(example.target) for i in range(len(example.target))]
    assert tree_domain.draw(example.target, values, tmp_path / "mol.png")


# fragment-smiles: the last subtree of each fragment continues inline, as a SMILES chain
SMILES_TOKENS = [RING, "{", AMIDE, AMINE, "}", ETHYL]


def test_the_last_subtree_continues_without_braces():
    tokenizer = FragmentTreeTokenizer([RING, AMIDE, AMINE, ETHYL], inline_last=True)
    assert tokenizer.tokenize(TEXT) == SMILES_TOKENS
    assert tokenizer.detokenize(SMILES_TOKENS) == TEXT
    assert decode_strict(tokenizer.detokenize(SMILES_TOKENS), "bracket-safe") == SMILES


def test_a_spelled_fragment_keeps_a_spelled_last_child_in_braces():
    tokenizer = FragmentTreeTokenizer([AMIDE], inline_last=True)
    tokens = tokenizer.tokenize(TEXT)
    assert tokens[-5:] == ["{", "C", "C", "<^>", "}"]  # ethyl after the spelled ring: braced
    assert AMIDE in tokens and tokens[tokens.index(AMIDE) + 1] == "N"  # inline after a token
    assert decode_strict(tokenizer.detokenize(tokens), "bracket-safe") == SMILES


@pytest.mark.parametrize("tokens", [
    [RING, "{", AMIDE, "}", ETHYL],  # the amide's <*> without its subtree
    [RING, ETHYL],  # one of the ring's two subtrees missing
    [RING, "{", AMIDE, AMINE, "}", ETHYL, ETHYL],  # a subtree on a fragment with no <*> left
])
def test_malformed_inline_chains_do_not_decode(tokens):
    tokenizer = FragmentTreeTokenizer([RING, AMIDE, AMINE, ETHYL], inline_last=True)
    assert decode_strict(tokenizer.detokenize(tokens), "bracket-safe") is None


# -- what a malformed tree lacks (sample.structure_rounds) -------------------------------

METHYL_PARENT = "CC<*>"  # no parent mark, one attachment point: can parent a whole tree


@pytest.mark.parametrize("inline, tokens, missing, completed", [
    (True, [RING, "{", AMIDE, "}", ETHYL], [(3, 1)],
     [RING, "{", AMIDE, "{", AMINE, "}", "}", ETHYL]),
    (True, [RING, ETHYL], [(1, 1)], [RING, "{", AMINE, "}", ETHYL]),
    (False, [RING, "{", AMIDE, "{", AMINE, "}", "}"], [(7, 1)],
     [RING, "{", AMIDE, "{", AMINE, "}", "}", "{", AMINE, "}"]),
    (False, [RING], [(1, 2)], [RING, "{", AMINE, "}", "{", AMINE, "}"]),
])
def test_missing_groups_name_where_each_unbonded_attachment_point_gets_its_group(
        inline, tokens, missing, completed):
    """Each (gap, count) names the groups a fragment lacks, placed after its last braced
    group; inserting a group holding a leaf there makes a tree that decodes strictly."""
    tokenizer = FragmentTreeTokenizer([RING, AMIDE, AMINE, ETHYL], inline_last=inline)
    assert decode_strict(tokenizer.detokenize(tokens), "bracket-safe") is None
    assert tokenizer.missing_groups(tokens) == missing
    assert decode_strict(tokenizer.detokenize(completed), "bracket-safe") is not None
    assert tokenizer.missing_groups(completed) == []


@pytest.mark.parametrize("tokens", [
    [RING, "{", AMIDE, AMINE, "}", ETHYL, ETHYL],  # a subtree on a fragment with no <*> left
    [RING, "{", AMIDE, AMINE],  # a group never closed
    [RING, "{", AMIDE, "}", "}", ETHYL],  # a brace never opened
    [],
])
def test_missing_groups_name_nothing_unless_the_tokens_are_one_closed_tree(tokens):
    tokenizer = FragmentTreeTokenizer([RING, AMIDE, AMINE, ETHYL], inline_last=True)
    assert tokenizer.missing_groups(tokens) == []


def test_unclosed_groups_orphan_roots_and_template_marks():
    tokenizer = FragmentTreeTokenizer([RING, AMIDE, AMINE, ETHYL, METHYL_PARENT],
                                      inline_last=True)
    assert [unclosed(t) for t in ([RING, "{", AMIDE], SMILES_TOKENS, [RING, "}"])] == [1, 0, -1]
    assert tokenizer.orphan_root([AMIDE, AMINE]) and not tokenizer.orphan_root(SMILES_TOKENS)
    assert decode_strict(tokenizer.detokenize([METHYL_PARENT, AMIDE, AMINE]),
                         "bracket-safe") == Chem.CanonSmiles("CCC(=O)NC")
    assert [tokenizer.marks(t) for t in (AMINE, METHYL_PARENT, RING, AMIDE, "{", "C")] == [
        (1, 0), (0, 1), (0, 2), (1, 1), (-1, -1), (-1, -1)]


TRIPLE = "c1<*>cc<*>cc<*>c1"  # a ring with three attachment points
ALL = [RING, AMIDE, AMINE, ETHYL, METHYL_PARENT, TRIPLE]


@pytest.mark.parametrize("inline, tokens, empty, misfit, fixed", [
    # a root that holds groups but no fragment: a fragment with 2 <*> and no <^> goes first
    (True, ["{", AMIDE, AMINE, "}", ETHYL], [(0, (0, 2))], [], [RING, "{", AMIDE, AMINE, "}", ETHYL]),
    # a group that holds a group but no fragment: a fragment with <^> and one <*>
    (True, [RING, "{", "{", AMINE, "}", "}", ETHYL], [(2, (1, 1))], [],
     [RING, "{", AMIDE, "{", AMINE, "}", "}", ETHYL]),
    # a leaf (no <*>) with a subtree: chosen again with one <*>
    (True, [RING, "{", ETHYL, AMINE, "}", ETHYL], [], [(2, (1, 1))],
     [RING, "{", AMIDE, AMINE, "}", ETHYL]),
    # a root with three groups and two <*>: chosen again with three
    (False, [RING, "{", AMINE, "}", "{", ETHYL, "}", "{", ETHYL, "}"], [], [(0, (0, 3))],
     [TRIPLE, "{", AMINE, "}", "{", ETHYL, "}", "{", ETHYL, "}"]),
    # a fragment below the root without <^>: chosen again with one, keeping its <*>
    (True, [RING, "{", METHYL_PARENT, AMINE, "}", ETHYL], [], [(2, (1, 1))],
     [RING, "{", AMIDE, AMINE, "}", ETHYL]),
])
def test_empty_and_misfit_fragments_name_where_a_fragment_is_missing_or_wrong(
        inline, tokens, empty, misfit, fixed):
    """Each names a place and the marks a fragment needs there; a fragment with those
    marks in that place makes a tree that decodes strictly."""
    tokenizer = FragmentTreeTokenizer(ALL, inline_last=inline)
    assert decode_strict(tokenizer.detokenize(tokens), "bracket-safe") is None
    assert tokenizer.empty_fragments(tokens) == empty
    assert tokenizer.misfit_fragments(tokens) == misfit
    assert decode_strict(tokenizer.detokenize(fixed), "bracket-safe") is not None
    assert tokenizer.empty_fragments(fixed) == tokenizer.misfit_fragments(fixed) == []
    assert [tokenizer.marks(t) for t in fixed if t not in tokens] == [m for _, m in empty + misfit]


def test_misfit_fragments_leave_orphan_roots_spelled_fragments_and_open_trees_alone():
    tokenizer = FragmentTreeTokenizer(ALL, inline_last=True)
    assert tokenizer.misfit_fragments([AMIDE, AMINE]) == []  # an orphan root: a parent goes first
    assert tokenizer.misfit_fragments([RING, "{", "C", "C", "<^>", AMINE, "}"]) == []  # spelled
    assert tokenizer.misfit_fragments([RING, "{", ETHYL, AMINE]) == []  # a group left open
    assert tokenizer.empty_fragments([RING, "{", "}", "}", ETHYL]) == []  # a stray brace
    assert [stray_close(t) for t in ([RING, "{", AMIDE, "}", "}", ETHYL], TREE, ["}"])] == [
        4, None, 0]


@pytest.fixture(scope="module")
def smiles_domain(small_csv, tmp_path_factory):
    return loflex.build(Domain, {"name": "molecules", "options": dict(
        path=str(small_csv), column="smiles", representation="bracket-safe",
        tokens="fragment-smiles", fragment_min_count=3,
        cache_dir=str(tmp_path_factory.mktemp("cache")), workers=1, fcd=False)})


def _filled(target: list[int], edits, choose) -> list[int]:
    """``target`` with the edits made (right to left), each MASK as ``choose(fill)``."""
    out = list(target)
    for edit in sorted(edits, reverse=True, key=lambda e: e.gap if isinstance(e, Insertion)
                       else e.position + 0.5):
        if isinstance(edit, Refill):
            out[edit.position] = choose(edit.fill)
        else:
            out[edit.gap:edit.gap] = [choose(edit.fill) if v == MASK else v for v in edit.tokens]
    return out


def _first_allowed(fill) -> int:
    return int(fill.nonzero()[0])


def test_missing_structure_completes_samples_that_lack_a_group_a_brace_or_a_parent(
        smiles_domain):
    """Cut a group, the last brace or the root out of training molecules: the domain names
    what to insert, and with any allowed fragment in each MASK slot the sample decodes."""
    d = smiles_domain
    opening, closing = d.vocab.stoi["{"], d.vocab.stoi["}"]
    grouped = [ex.target for ex in d.examples("train") if opening in ex.target][:20]
    assert grouped
    for target in grouped:
        start = target.index(opening)
        end = start + next(i for i in range(1, len(target)) if
                           unclosed(d.vocab.decode(target[start:start + i + 1])) == 0)
        cut = target[:start] + target[end + 1:]
        assert d.to_smiles(cut, strict=True) is None
        [insertion] = d.missing_structure([], cut)
        assert insertion.tokens == (opening, MASK, closing)
        assert all(d.tokenizer.marks(t) == (1, 0) for t in
                   d.vocab.decode(insertion.fill.nonzero().squeeze(1).tolist()))
        assert d.to_smiles(_filled(cut, [insertion], _first_allowed), strict=True) is not None
        last = len(target) - 1 - target[::-1].index(closing)
        open_group = target[:last] + target[last + 1:]
        assert d.missing_structure([], open_group) == [
            type(insertion)(len(open_group), (closing,))]
    inline = [ex.target for ex in d.examples("train")
              if d.tokenizer.marks(d.vocab.itos[ex.target[0]]) == (0, 1)
              and d.tokenizer.marks(d.vocab.itos[ex.target[1]])[0] == 1][:20]
    assert inline
    for target in inline:
        [insertion] = d.missing_structure([], target[1:])
        assert insertion.gap == 0 and insertion.tokens == (MASK,)
        assert bool(insertion.fill[target[0]])
        assert d.to_smiles(_filled(target[1:], [insertion], _first_allowed),
                           strict=True) is not None
        assert d.missing_structure(target[:1], target[1:]) == []  # the root is in the prompt
    assert d.missing_structure([], grouped[0]) == []


def _marks_of(d, fill) -> set[tuple[int, int]]:
    return {d.tokenizer.marks(t) for t in d.vocab.decode(fill.nonzero().squeeze(1).tolist())}


def test_missing_structure_refills_misfits_and_fills_empty_groups_on_real_molecules(
        smiles_domain):
    """Give a training molecule's root one attachment point too few, or take away a root
    whose subtrees are braced: the domain names that token (or gap) with every fragment
    that fits, the original among them, and the original in its place restores the
    molecule."""
    d = smiles_domain
    opening = d.vocab.stoi["{"]
    branched = [ex.target for ex in d.examples("train")
                if d.tokenizer.marks(d.vocab.itos[ex.target[0]])[1] >= 2][:20]
    assert branched
    for target in branched:
        parents, attachments = d.tokenizer.marks(d.vocab.itos[target[0]])
        fewer = next(i for i, t in enumerate(d.vocab.itos)
                     if d.tokenizer.marks(t) == (parents, attachments - 1))
        broken = [fewer, *target[1:]]
        assert d.to_smiles(broken, strict=True) is None
        [refill] = d.missing_structure([], broken)
        assert refill == Refill(0, refill.fill) and bool(refill.fill[target[0]])
        assert _marks_of(d, refill.fill) == {(parents, attachments)}
        assert _filled(broken, [refill], lambda fill, token=target[0]: token) == target
        assert d.missing_structure(broken[:1], broken[1:]) == []  # the root is in the prompt
    braced = [ex.target for ex in d.examples("train") if ex.target[1:2] == [opening]][:20]
    assert braced
    for target in braced:
        edits = d.missing_structure([], target[1:])  # the root's groups without the root
        assert edits == [Insertion(0, (MASK,), edits[0].fill)] and bool(edits[0].fill[target[0]])
        assert _marks_of(d, edits[0].fill) == {d.tokenizer.marks(d.vocab.itos[target[0]])}
        assert _filled(target[1:], edits, lambda fill, token=target[0]: token) == target


def test_missing_structure_closes_a_stray_brace_over_a_new_leaf_until_the_tree_decodes(
        smiles_domain):
    """A ``}`` that closes nothing gets ``{`` and a leaf before it; the next rounds fit the
    fragment that gained the group, and any fitting fragments make a sample of whole
    fragments decode."""
    d = smiles_domain
    closing = d.vocab.stoi["}"]
    whole = [ex for ex in d.examples("train") if all(
        t in d.tokenizer.templates or t in "{}" for t in d.vocab.decode(ex.target))][:20]
    assert len(whole) >= 10
    for ex in whole:
        sample = [*ex.target, closing]
        [first] = d.missing_structure([], sample)
        assert first.gap == len(ex.target) and first.tokens == (d.vocab.stoi["{"], MASK)
        assert _marks_of(d, first.fill) == {(1, 0)}
        for _ in range(4):
            edits = d.missing_structure([], sample)
            sample = _filled(sample, edits, _first_allowed)
        assert d.missing_structure([], sample) == []
        assert d.to_smiles(sample, strict=True) is not None


def test_spelled_fragments_false_leaves_only_whole_fragments_and_braces(smiles_domain):
    logits = torch.zeros(2, 3, len(smiles_domain.vocab))
    assert smiles_domain.constrain_logits(logits, None) is logits  # spelling allowed: unchanged
    options = smiles_domain.options.model_copy(update={"spelled_fragments": False})
    whole = MoleculeDomain(options, state=smiles_domain.state_dict())
    allowed = torch.isfinite(whole.constrain_logits(logits, None))
    expected = [t in whole.tokenizer.templates or t in ("{", "}") for t in whole.vocab.itos]
    assert (allowed == torch.tensor(expected)).all()
    assert {"C", "<*>", "<^>", "1"} <= set(whole.vocab.itos)  # spelling tokens exist...
    assert not any(allowed[0, 0, whole.vocab.stoi[t]] for t in ("C", "<*>", "<^>", "1"))


def test_smiles_domain_examples_decode_to_their_molecules(smiles_domain):
    domain = smiles_domain
    splits = domain.splits()
    examples = domain.examples("train")
    assert len(examples) == len(splits["train"])
    for ex, smiles in zip(examples[:100], splits["train"].smiles):
        assert domain.to_smiles(ex.target, strict=True) == smiles
        assert domain.encode(domain.to_text(ex.target)) == ex.target
    check_domain(domain, splits=("train", "test"))
    restored = MoleculeDomain(domain.options, state=domain.state_dict())
    assert restored.tokenizer.inline_last and restored.tokenizer.templates == \
        domain.tokenizer.templates
