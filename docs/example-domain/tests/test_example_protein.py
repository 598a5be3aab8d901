"""Tests of the protein domain: the loflex contract checks plus its own metric."""

import pytest
from loflex import DataError, Domain, Generated, components
from loflex.extension.testing import check_domain
from loflex_example_protein import AMINO_ACIDS, ProteinDomain, read_fasta, valid_protein


@pytest.fixture(scope="module")
def domain():
    return ProteinDomain(ProteinDomain.Options())


def test_contract(domain):
    check_domain(domain, splits=("train", "valid", "test"))


def test_registered_through_the_entry_point():
    assert components(Domain)["protein"] is ProteinDomain


def test_bundled_peptides(domain):
    sizes = {split: len(domain.examples(split)) for split in ("train", "valid", "test")}
    assert sizes == {"train": 240, "valid": 30, "test": 30}
    assert set(domain.vocab.itos[4:]) <= set(AMINO_ACIDS + "X")


def test_valid_protein():
    assert valid_protein("MKV")
    assert not valid_protein("MXV")  # unknown residue
    assert not valid_protein("")


def test_metrics_hand_computed(domain):
    train_peptide = domain.to_text(domain.examples("train")[0].target)
    texts = [train_peptide, train_peptide, "ACDX", "WWW"]
    m = domain.metrics([Generated(tokens=domain.encode(t)) for t in texts])
    assert m["valid_protein"] == pytest.approx(3 / 4)
    assert m["uniqueness"] == pytest.approx(2 / 3)  # distinct valid {train_peptide, WWW}
    assert m["novelty"] == pytest.approx(1 / 2)  # WWW is new
    assert m["mean_length"] == pytest.approx((2 * len(train_peptide) + 4 + 3) / 4)


def test_fasta_records_span_lines(tmp_path):
    path = tmp_path / "p.fasta"
    path.write_text(">a\nMKV\nlla\n>b\n\n>c\nGG\n")
    assert read_fasta(path) == ["MKVLLA", "GG"]


def test_bad_letter_names_the_line(tmp_path):
    path = tmp_path / "p.fasta"
    path.write_text(">a\nMKV\nMK1\n")
    with pytest.raises(DataError, match="line 3: '1' is not an amino-acid letter"):
        read_fasta(path)
