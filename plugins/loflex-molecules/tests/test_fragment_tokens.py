"""Fragment tokens: one token per frequent BracketSAFE fragment, then its attachment numbers."""

from __future__ import annotations

import loflex
import pytest
from loflex import Domain
from loflex.extension.testing import check_domain
from loflex_molecules.domain import MoleculeDomain
from loflex_molecules.fragment_tokens import (
    FragmentTokenizer,
    count_templates,
    is_template,
    template,
)
from loflex_molecules.representations import decode_strict, encode_smiles
from loflex_molecules.tokenize import tokenize
from rdkit import Chem

# CCOc1cccc(C(=O)Nc2ccn(Cc3ccccn3)n2)c1 in BracketSAFE
TEXT = "c1<1>cccc<2>c1.c1<3>ccn<4>n1.c1<5>ccccn1.C<6><2>=O.CC<7>.O<7><1>.N<6><3>.C<4><5>"
RING = "c1<*>cccc<*>c1"


def test_template_replaces_every_attachment_number():
    assert template("c1<%12>cccc<2>c1") == RING
    assert template("CCO") == "CCO"
    assert count_templates([TEXT, "CC<1>.CC<1>"]) == {
        RING: 1, "c1<*>ccn<*>n1": 1, "c1<*>ccccn1": 1, "C<*><*>=O": 1, "CC<*>": 3,
        "O<*><*>": 1, "N<*><*>": 1, "C<*><*>": 1}


def test_templates_are_multi_token_fragments():
    assert is_template(RING) and is_template("CC<*>") and is_template("CCO")
    assert not is_template("<3>") and not is_template("C") and not is_template("[nH]")


def test_known_fragments_become_one_token_and_the_rest_stays_atom_level():
    tokenizer = FragmentTokenizer([RING, "C<*><*>=O"])
    tokens = tokenizer.tokenize("c1<1>cccc<2>c1.C<1><2>=O.CC<3>")
    assert tokens == [RING, "<1>", "<2>", ".", "C<*><*>=O", "<1>", "<2>", ".", "C", "C", "<3>"]


def test_tokens_join_back_to_the_text():
    counts = count_templates([TEXT])
    tokenizer = FragmentTokenizer(t for t in counts if is_template(t))
    tokens = tokenizer.tokenize(TEXT)
    assert tokenizer.detokenize(tokens) == TEXT
    assert len(tokens) == 29  # 8 fragments, 14 attachment numbers, 7 separators
    smiles = decode_strict(TEXT, "bracket-safe")
    assert smiles == Chem.CanonSmiles("CCOc1cccc(C(=O)Nc2ccn(Cc3ccccn3)n2)c1")


def test_a_template_takes_the_attachment_tokens_right_after_it():
    tokenizer = FragmentTokenizer([RING])
    assert tokenizer.detokenize([RING, "<1>", "<2>", "C"]) == "c1<1>cccc<2>c1C"
    # missing attachments stay placeholders (the text does not decode)
    assert tokenizer.detokenize([RING, "<1>"]) == "c1<1>cccc<*>c1"
    assert decode_strict("c1<1>cccc<*>c1", "bracket-safe") is None
    # a surplus attachment number is written where it stands
    assert tokenizer.detokenize([RING, "<1>", "<2>", "<3>"]) == "c1<1>cccc<2>c1<3>"


def test_pieces_point_at_the_token_that_wrote_them():
    tokenizer = FragmentTokenizer([RING])
    pieces = tokenizer.pieces([RING, "<1>", "<2>", ".", "C", "<1>"])
    ring = tokenize("c1") + ["<1>"] + tokenize("cccc") + ["<2>"] + tokenize("c1")
    assert [p for p, _ in pieces] == ring + [".", "C", "<1>"]
    assert [s for _, s in pieces] == [0] * len(ring) + [3, 4, 5]
    atoms = [s for p, s in pieces if p.isalpha()]
    assert atoms == [0] * 6 + [4]  # six ring atoms from token 0, one carbon from token 4


@pytest.fixture(scope="module")
def fragment_domain(small_csv, tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    return loflex.build(Domain, {"name": "molecules", "options": dict(
        path=str(small_csv), column="smiles", representation="bracket-safe", tokens="fragments",
        fragment_min_count=3, cache_dir=str(cache), workers=1, fcd=False)})


def test_fragment_domain_examples_decode_to_their_molecules(fragment_domain):
    splits = fragment_domain.splits()
    examples = fragment_domain.examples("train")
    for ex, smiles in zip(examples[:100], splits["train"].smiles):
        assert Chem.MolToSmiles(fragment_domain.decode(ex.target)) == smiles
        assert fragment_domain.to_smiles(ex.target, strict=True) == smiles
    atom_level = loflex.build(Domain, {"name": "molecules", "options": fragment_domain.options
                                       .model_copy(update={"tokens": "atoms"}).model_dump()})
    mean = sum(len(e.target) for e in examples) / len(examples)
    atom_mean = sum(len(e.target) for e in atom_level.examples("train")) / len(examples)
    assert mean < 0.7 * atom_mean  # frequent fragments shorten the sequences


def test_fragment_domain_vocabulary_holds_frequent_templates_only(fragment_domain):
    texts = [encode_smiles(s, "bracket-safe") for s in fragment_domain.splits()["train"].smiles]
    counts = count_templates(texts)
    templates = fragment_domain.tokenizer.templates
    assert templates == {t for t, n in counts.items() if n >= 3 and is_template(t)}
    assert "<%20>" in fragment_domain.vocab and "<" not in fragment_domain.vocab


def test_fragment_domain_honours_the_domain_contract(fragment_domain):
    check_domain(fragment_domain, splits=("train", "test"))
    restored = MoleculeDomain(fragment_domain.options, state=fragment_domain.state_dict())
    assert restored.tokenizer.templates == fragment_domain.tokenizer.templates
    atoms = fragment_domain.options.model_copy(update={"tokens": "atoms"})
    with pytest.raises(loflex.ConfigError, match="tokens = 'fragments'"):
        MoleculeDomain(atoms, state=fragment_domain.state_dict())


def test_fragment_domain_draws_and_takes_fragment_prompts(fragment_domain, tmp_path):
    example = fragment_domain.examples("test")[0]
    values = [i / len(example.target) for i in range(len(example.target))]
    assert fragment_domain.draw(example.target, values, tmp_path / "mol.png")
    assert (tmp_path / "mol.png").stat().st_size > 1000
    assert len(fragment_domain.fragment_prompts()) == 40


def test_fragment_tokens_need_bracket_safe(small_csv, tmp_path):
    with pytest.raises(loflex.ConfigError, match="set domain.options.representation = "
                                                 "'bracket-safe'"):
        loflex.build(Domain, {"name": "molecules", "options": dict(
            path=str(small_csv), column="smiles", representation="safe", tokens="fragments",
            cache_dir=str(tmp_path), workers=1)})
