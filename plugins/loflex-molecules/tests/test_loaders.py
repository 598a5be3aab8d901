"""Reading user files: formats, bad molecules, unreadable files and the cache."""

from __future__ import annotations

import gzip

import pytest
from loflex import DataError
from loflex_molecules import data
from loflex_molecules.data import convert, load_splits
from loflex_molecules.loaders import read_molecules
from rdkit import Chem

GOOD = ["CCO", "c1ccccc1", "CC(=O)Nc1ccc(O)cc1", "CCN(CC)CC", "O=C(O)c1ccccc1"]


def test_csv_column_case_insensitive_and_missing(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("name,Smiles\na,CCO\nb,CCN\n")
    assert read_molecules(path, "SMILES").strings == ["CCO", "CCN"]
    with pytest.raises(DataError, match="no column 'mol'.*`column` option"):
        read_molecules(path, "mol")


def test_smi_txt_and_gzip(tmp_path):
    (tmp_path / "a.smi").write_text("SMILES\nCCO name1\n\nc1ccccc1\tname2\n")
    assert read_molecules(tmp_path / "a.smi").strings == ["CCO", "c1ccccc1"]
    with gzip.open(tmp_path / "b.txt.gz", "wt") as handle:
        handle.write("CCO\nCCN\n")
    assert read_molecules(tmp_path / "b.txt.gz").strings == ["CCO", "CCN"]


def test_sdf_with_a_broken_record(tmp_path):
    path = tmp_path / "m.sdf"
    writer = Chem.SDWriter(str(path))
    for s in GOOD[:2]:
        writer.write(Chem.MolFromSmiles(s))
    writer.close()
    broken = "junk\n  RDKit\n\n  1  0  0  0  0  0  0  0  0  0999 V2000\n garbage\nM  END\n$$$$\n"
    path.write_text(path.read_text() + broken)
    raw = read_molecules(path)
    assert raw.strings == ["CCO", "c1ccccc1"]
    assert raw.unreadable == ["record 3"]


def test_parquet_file_and_split_directory(tmp_path, cache):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"input": GOOD}), tmp_path / "one.parquet")
    assert read_molecules(tmp_path / "one.parquet").strings == GOOD  # SAFE-GPT column name
    shards = tmp_path / "hf" / "data"
    shards.mkdir(parents=True)
    pq.write_table(pa.table({"smiles": GOOD * 4}), shards / "train-00000-of-00002.parquet")
    pq.write_table(pa.table({"smiles": GOOD * 4}), shards / "train-00001-of-00002.parquet")
    pq.write_table(pa.table({"smiles": GOOD[:2]}), shards / "test-00000-of-00001.parquet")
    splits = load_splits(tmp_path / "hf", "SMILES", True, {}, 1, cache)
    assert len(splits["test"]) == 2 and len(splits["train"]) + len(splits["valid"]) == 40
    assert splits["valid"].safe is not None


@pytest.mark.parametrize("content, match", [
    (b"", "contains no molecules"),
    (b"\x00\x01\x02\xff" * 100, "looks binary"),
    (b"CCO\n\xff\xfeC\n", "not UTF-8"),
])
def test_unreadable_files_raise_clear_errors(tmp_path, content, match):
    path = tmp_path / "bad.smi"
    path.write_bytes(content)
    with pytest.raises(DataError, match=match) as info:
        read_molecules(path)
    assert "bad.smi" in str(info.value)


def test_unknown_format_missing_file_and_bad_gzip(tmp_path):
    (tmp_path / "m.xlsx").write_text("x")
    with pytest.raises(DataError, match="unsupported format"):
        read_molecules(tmp_path / "m.xlsx")
    with pytest.raises(DataError, match="does not exist"):
        read_molecules(tmp_path / "nope.csv")
    (tmp_path / "m.smi.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="not a valid gzip"):
        read_molecules(tmp_path / "m.smi.gz")


def test_invalid_smiles_are_skipped_with_one_summary_line(tmp_path, cache, capsys):
    path = tmp_path / "m.smi"
    path.write_text("\n".join(GOOD + ["C1CC", "xyz", "C(C)(C)(C)(C)C"]) + "\n")
    result = convert(read_molecules(path), need_safe=True, workers=1, cache_dir=cache)
    assert len(result) == 5 and len(result.safe) == 5
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    assert "skipped 3 of 8" in lines[0] and "'C1CC'" in lines[0] and "m.smi" in lines[0]


def test_all_invalid_raises(tmp_path, cache):
    path = tmp_path / "m.smi"
    path.write_text("xyz\nC1CC\n")
    with pytest.raises(DataError, match="no valid molecule in .*m.smi"):
        convert(read_molecules(path), need_safe=True, workers=1, cache_dir=cache)


def test_pool_conversion_and_cache(tmp_path, cache, monkeypatch, moses_smiles):
    path = tmp_path / "m.smi"
    path.write_text("\n".join(moses_smiles[:60]) + "\n")
    monkeypatch.setattr(data, "PARALLEL_MIN", 10)
    first = convert(read_molecules(path), need_safe=True, workers=2, cache_dir=cache)
    assert len(list(cache.iterdir())) == 1
    serial = data._convert_all(moses_smiles[:60], True, 1)
    assert first.safe == serial["safe"] and first.smiles == serial["smiles"]

    def fail(*args, **kwargs):
        raise AssertionError("the cache should have answered")

    monkeypatch.setattr(data, "_convert_all", fail)
    again = convert(read_molecules(path), need_safe=True, workers=2, cache_dir=cache)
    assert again.smiles == first.smiles
    assert not list(cache.glob("*.tmp"))


def test_single_file_is_carved_into_splits(small_csv, cache):
    splits = load_splits(small_csv, "smiles", False, {"valid": 10, "test": 1000}, 1, cache)
    assert len(splits["valid"]) == 10 and len(splits["test"]) == 40  # at most a tenth
    assert len(splits["train"]) == 350 and splits["train"].safe is None
    assert not set(splits["train"].smiles) & set(splits["test"].smiles)
