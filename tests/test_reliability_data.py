"""Bad input data gives a DataError naming the file, the problem and the fix; nothing is lost silently."""

from __future__ import annotations

import os
import re

import pytest
from loflex.contracts import Domain
from loflex.errors import DataError
from loflex.extension import registry


def build(path, **options) -> Domain:
    return registry.build(Domain, {"name": "sequences", "options": {"path": str(path), **options}})


def expect(want: str, path, **options) -> str:
    with pytest.raises(DataError) as info:
        build(path, **options).examples("train")
    assert type(info.value) is DataError
    assert re.search(want, str(info.value)), str(info.value)
    return str(info.value)


def test_missing_file(tmp_path):
    expect(r"does not exist; check domain\.options\.path", tmp_path / "absent.txt")


@pytest.mark.parametrize("kind", ["folder", "FIFO", "device"])
def test_data_that_is_not_a_regular_file(tmp_path, kind):
    path = {"folder": tmp_path, "FIFO": tmp_path / "fifo.txt", "device": "/dev/zero"}[kind]
    if kind == "FIFO":
        os.mkfifo(path)
    shown = {"folder": "a folder", "FIFO": r"a FIFO \(named pipe\)",
             "device": "a character device"}[kind]
    expect(rf"'{path}' is {shown}, not a regular file; set domain\.options\.path to a text, "
           "FASTA or CSV file", path)


@pytest.mark.parametrize("content", [b"", b"\n\n   \n", b"\xef\xbb\xbf"])
def test_empty_file(tmp_path, content):
    path = tmp_path / "empty.txt"
    path.write_bytes(content)
    expect(r"contains no sequences; put one sequence per line", path)


def test_binary_junk(tmp_path):
    path = tmp_path / "junk.txt"
    path.write_bytes(b"ACGT\nACGA\n" + bytes(range(256)) * 4)  # byte 0x0a ends line 3
    text = expect(r"line 4 has bytes that are not UTF-8 \(0x80\); save the file as UTF-8", path)
    assert "junk.txt" in text


def test_wrong_encoding(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("ACGT\nCAFÉ\n".encode("latin-1"))
    expect(r"line 2 has bytes that are not UTF-8 \(0xc9\)", path)


def test_utf16_file_is_not_taken_for_text(tmp_path):
    path = tmp_path / "utf16.txt"
    path.write_bytes("ACGT\nACGA\n".encode("utf-16"))
    expect(r"not UTF-8", path)


def test_missing_csv_column(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("id,seq\n1,ACGT\n2,ACGA\n")
    expect(r"has columns 'id', 'seq'; set domain\.options\.column", path)
    expect(r"has columns 'id', 'seq'", path, column="sequence")
    assert len(build(path, column="seq", valid_fraction=0, test_fraction=0).examples("train")) == 2


def test_fasta_without_header(tmp_path):
    path = tmp_path / "data.fasta"
    path.write_text("ACGT\n>a\nACGT\n")
    expect(r"line 1 comes before the first '>' header", path)


def test_reserved_token_in_data(tmp_path):
    path = tmp_path / "words.txt"
    path.write_text("a b\nc <mask> d\n")
    expect(r"line 2 holds the reserved token '<mask>'; remove it", path, tokenizer="whitespace")


def test_token_outside_alphabet_error_then_skip_counted(tmp_path, capsys):
    path = tmp_path / "seqs.txt"
    path.write_text("ACGT\nACXT\nGGGA\nTTTA\n")
    expect(r"line 2: character 'X' is not in the alphabet; .*outside_alphabet=skip", path,
           alphabet="ACGT")
    domain = build(path, alphabet="ACGT", outside_alphabet="skip", valid_fraction=0,
                   test_fraction=0)
    assert len(domain.examples("train")) == 3
    assert domain.report.outside_alphabet == 1
    assert "1 with tokens outside the alphabet were skipped" in capsys.readouterr().err


@pytest.mark.parametrize("mode, kept, longest", [("skip", 3, 4), ("truncate", 5, 4)])
def test_sequence_longer_than_max_length(tmp_path, capsys, mode, kept, longest):
    path = tmp_path / "seqs.txt"
    path.write_text("ACG\nACGT\nACGTA\nA\nACGTACGTAC\n")
    domain = build(path, max_length=4, too_long=mode, valid_fraction=0, test_fraction=0)
    train = domain.examples("train")
    assert len(train) == kept
    assert max(len(ex.target) for ex in train) == longest
    assert domain.report.too_long == 2, "both over-long sequences are counted"
    action = "skipped" if mode == "skip" else "truncated"
    assert f"2 longer than max_length=4 tokens were {action}" in capsys.readouterr().err
    assert domain.max_target_length == 4


def test_all_sequences_unusable(tmp_path):
    path = tmp_path / "seqs.txt"
    path.write_text("ACGTACGT\nACGTACGTA\n")
    expect(r"has 0 usable sequences, too few .* add sequences", path, max_length=3)


def test_too_few_sequences_for_the_split(tmp_path):
    path = tmp_path / "seqs.txt"
    path.write_text("ACGT\n")
    expect(r"has 1 usable sequence, too few .*valid_fraction=0", path)


def test_separator_missing_names_line(tmp_path):
    path = tmp_path / "pairs.txt"
    path.write_text("AC>GT\nACGT\n")
    expect(r"line 2 has no separator '>'; write each line as PROMPT>TARGET", path, separator=">")


def test_a_huge_separator_is_quoted_as_a_short_excerpt(tmp_path):
    path = tmp_path / "pairs.txt"
    path.write_text("AC>GT\nACGT\n")
    separator = "\x1b[2J" + "=" * 100_000
    text = expect(r"line 1 has no separator '\\x1b\[2J={36}\.\.\.'; write each line as "
                  r"PROMPT\\x1b\[2J={36}\.\.\.TARGET", path, separator=separator)
    assert len(text) < 400 and "\x1b" not in text


def test_a_huge_token_is_quoted_as_a_short_excerpt(tmp_path):
    path = tmp_path / "seqs.txt"
    path.write_text("A C\n" + "X" * 1_000_000 + "\n")
    text = expect(r"line 2: token 'X{40}\.\.\.' is not in the alphabet", path,
                  tokenizer="whitespace", alphabet="A C")
    assert len(text) < 400


@pytest.mark.parametrize("pattern", ["(A+)+B|.", "(?:[A-Z]*)*", "(?:x{1,3}){2,}|."])
def test_a_pattern_with_nested_repetition_is_refused(tmp_path, pattern):
    from loflex.errors import ConfigError

    path = tmp_path / "seqs.txt"
    path.write_text("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAC\n")
    with pytest.raises(ConfigError, match=r"repeats a repetition \(like '\(A\+\)\+'\), which "
                                          r"can take exponential time"):
        build(path, tokenizer="regex", pattern=pattern)


def test_a_slow_pattern_stops_at_its_time_budget(tmp_path):
    import signal
    import time

    path = tmp_path / "seqs.txt"
    path.write_text("AB\n" * 5 + "A" * 80 + "\n")  # (A|AA)*B tries Fibonacci(80) splits
    def earlier_handler(signum, frame):
        pass

    previous = signal.signal(signal.SIGALRM, earlier_handler)
    signal.setitimer(signal.ITIMER_REAL, 300)
    try:
        started = time.monotonic()
        expect(r"line 6: the token pattern '\(\?:A\|AA\)\*B\|\.' took over 1 s on this text; "
               r"simplify domain\.options\.pattern", path, tokenizer="regex",
               pattern="(?:A|AA)*B|.")
        assert time.monotonic() - started < 20
        left, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 250 < left < 300, "an earlier timer keeps running"
        assert signal.getsignal(signal.SIGALRM) is earlier_handler
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_unmatched_regex_token(tmp_path):
    path = tmp_path / "seqs.txt"
    path.write_text("ABC\nAB1\n")
    expect(r"line 2: character '1' is not matched by the token pattern", path,
           tokenizer="regex", pattern="[A-Z]")


# -- sampling-time inputs ------------------------------------------------------------------

def test_unknown_tokens_at_sampling_time(tmp_path):
    path = tmp_path / "seqs.txt"
    path.write_text("ACGT\nGATTACA\nCAT\nTAG\n")
    domain = build(path, valid_fraction=0, test_fraction=0)
    with pytest.raises(DataError) as info:
        domain.parse_prompt("ACXZ")
    assert type(info.value) is DataError
    assert re.search(r"not in the model's vocabulary: 'X', 'Z'; use only tokens seen", str(info.value))
    assert domain.parse_prompt("GAT").prompt == domain.encode("GAT")


def test_unknown_tokens_at_sampling_time_through_the_cli(tmp_path, capsys):
    from loflex.cli import main

    path = tmp_path / "seqs.txt"
    path.write_text("".join(f"{w}\n" for w in ["ACGT", "GATTACA", "CAT", "TAG"] * 5))
    run_dir = tmp_path / "run"
    assert main(["train", "--set", "domain.name=sequences", "--set", f"domain.options.path={path}",
                 "--set", "order.name=uniform", "--set", "generator.options.layers=1",
                 "--set", "generator.options.width=32", "--set", "generator.options.heads=2",
                 "--set", "train.steps=1", "--set", "train.batch_size=4",
                 "--set", "train.eval_every=0", "--no-progress", "-o", str(run_dir)]) == 0
    out = tmp_path / "s.jsonl"
    assert main(["sample", str(run_dir), "-n", "2", "--steps", "2", "--prompt", "CAQ",
                 "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: tokens not in the model's vocabulary: 'Q'")
    assert not out.exists() and not out.with_name("s.jsonl.partial").exists()


def test_decode_rejects_ids_outside_the_vocabulary(tmp_path):
    path = tmp_path / "seqs.txt"
    path.write_text("ACGT\nGATTACA\n")
    domain = build(path, valid_fraction=0, test_fraction=0)
    assert domain.decode([4, 5]) is not None
    assert domain.decode([4, len(domain.vocab)]) is None
    assert domain.decode([1]) is None
    assert domain.decode([-3]) is None


# -- molecules (the loflex-molecules plugin, when installed) --------------------------------

@pytest.fixture
def molecules(tmp_path):
    plugin = pytest.importorskip("loflex_molecules.plugin")
    from loflex.extension.testing import registered

    def build_molecules(name: str, content: bytes, **options) -> Domain:
        path = tmp_path / name
        path.write_bytes(content)
        return registry.build(Domain, {"name": "molecules", "options": {
            "path": str(path), "representation": "smiles", "cache_dir": str(tmp_path / "cache"),
            "valid_size": 1, "test_size": 1, **options}})

    with registered(plugin, name="molecules"):
        yield build_molecules


@pytest.mark.parametrize("name, content, want", [
    ("empty.csv", b"", r"empty.csv' is empty; give a CSV with a header row and a 'SMILES' column"),
    ("header.csv", b"SMILES\n", r"contains no molecules; give a file with one SMILES per row"),
    ("junk.csv", bytes(range(256)) * 3, r"looks binary, not text; give a text file of SMILES"),
    ("latin.csv", "SMILES\nCCO\nCé\n".encode("latin-1"),
     r"is not UTF-8 text \(byte 12\); re-save it with UTF-8 encoding"),
    ("columns.csv", b"smi,id\nCCO,1\n", r"has no column 'SMILES' \(columns: 'smi', 'id'\); set "
                                        r"the domain's `column` option"),
    ("invalid.csv", b"SMILES\nC1CC\nxyz\nC(((\n", r"no valid molecule in .*invalid.csv' \(RDKit "
                                                  r"could not read any of them\)"),
])
def test_bad_molecule_files(molecules, name, content, want):
    with pytest.raises(DataError) as info:
        molecules(name, content).examples("train")
    assert type(info.value) is DataError
    assert re.search(want, str(info.value)), str(info.value)


def test_invalid_molecules_are_skipped_and_counted(molecules, capsys):
    domain = molecules("mixed.smi", b"CCO\nxyz\nc1ccccc1\nCCN\nC1CC\nCCCl\n")
    assert len(domain.examples("train")) > 0
    assert "skipped 2 of 6 molecules" in capsys.readouterr().err


@pytest.mark.parametrize("mode, kept", [("skip", 4), ("truncate", 6)])
def test_molecules_longer_than_max_length(molecules, capsys, mode, kept):
    domain = molecules("long.smi", b"CCO\nCCCCCCCCCCCCCCCCCCCC\nc1ccccc1\nCCN\nCCCCCCCCCCCCCCCCCCC"
                                   b"CCCCCCCCCCCCC\nCCCl\n", max_length=8, too_long=mode)
    train = domain.examples("train")
    assert len(train) == kept and max(len(ex.target) for ex in train) <= 8
    assert f"2 longer than max_length=8 tokens ({'skipped' if mode == 'skip' else 'truncated'})" \
        in capsys.readouterr().err


def test_molecule_tokens_outside_the_vocabulary(molecules):
    domain = molecules("small.smi", b"CCO\nc1ccccc1\nCCN\nCCCl\n")
    with pytest.raises(DataError, match=r"not in the model's vocabulary"):
        domain.encode("CC[U]")
    with pytest.raises(DataError, match=r"fragment prompts need representation 'safe'"):
        domain.parse_prompt("CC")


# -- samples files ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from loflex.cli import main

    root = tmp_path_factory.mktemp("tiny")
    path = root / "seqs.txt"
    path.write_text("".join(f"{w}\n" for w in ["ACGT", "GATTACA", "CAT", "TAG"] * 5))
    assert main(["train", "--set", "domain.name=sequences", "--set", f"domain.options.path={path}",
                 "--set", "order.name=uniform", "--set", "generator.options.layers=1",
                 "--set", "generator.options.width=32", "--set", "generator.options.heads=2",
                 "--set", "train.steps=1", "--set", "train.batch_size=4",
                 "--set", "train.eval_every=0", "--no-progress", "-o", str(root / "run")]) == 0
    return root / "run"  # vocabulary: 4 special tokens and A, C, G, T


@pytest.mark.parametrize("content, problem", [
    (b'{"tokens": [4, 5]}\n' + bytes(range(128, 256)), r"line 2 is not UTF-8 text; pass a samples "
                                                     r"file written by `loflex sample`"),
    (b'{"tokens": [4, 5]}\n{"tokens": [4, 999]}\n', r"line 2 holds token id 999, outside the "
                                                  r"model's vocabulary of 8 tokens"),
    (b'{"tokens": [-1]}\n', r"line 1 holds token id -1, outside"),
    (b'{"tokens": [4], "prompt_ids": [8]}\n', r"line 1 holds token id 8, outside"),
    (b'[1, 2]\n', r"line 1 is not a sample record with a 'tokens' list"),
    (b'{"tokens": [4.5]}\n', r"line 1 is not a sample record"),
    (b"[" * 100_000 + b"\n", r"line 1 is not a sample record"),
])
def test_a_bad_samples_file_is_refused(tiny_run, tmp_path, capsys, content, problem):
    from loflex.cli import main

    samples = tmp_path / "s.jsonl"
    samples.write_bytes(content)
    assert main(["evaluate", str(tiny_run), "--samples", str(samples)]) == 1
    err = capsys.readouterr().err
    assert re.search(problem, err) and err.count("\n") == 1, err


@pytest.mark.parametrize("kind", ["folder", "FIFO"])
def test_a_samples_file_that_is_not_a_regular_file(tiny_run, tmp_path, capsys, kind):
    from loflex.cli import main

    path = tmp_path / "s.jsonl"
    path.mkdir() if kind == "folder" else os.mkfifo(path)
    assert main(["evaluate", str(tiny_run), "--samples", str(path)]) == 1
    shown = "a folder" if kind == "folder" else "a FIFO (named pipe)"
    assert capsys.readouterr().err == (f"Error: samples '{path}' is {shown}, not a regular file; "
                                       "pass a regular file\n")


# -- molecules: nothing long enough to crash RDKit reaches it -------------------------------

def test_a_20000_atom_chain_is_skipped_not_a_crash(tmp_path):
    import subprocess
    import sys

    pytest.importorskip("loflex_molecules")
    from loflex_molecules.representations import MAX_SMILES_CHARS, canonical, encode_smiles

    assert canonical("C" * MAX_SMILES_CHARS) == "C" * MAX_SMILES_CHARS
    assert canonical("C" * (MAX_SMILES_CHARS + 1)) is None
    with pytest.raises(ValueError, match="has 2001 characters, more than 2000"):
        encode_smiles("C" * (MAX_SMILES_CHARS + 1), "safe")
    data = tmp_path / "m.csv"
    rows = ["CCO", "c1ccccc1", "CC(=O)O", "CCN", "CCCl", "C" * 20_000, "OCC", "CCCC", "CC=O"]
    data.write_text("SMILES\n" + "\n".join(rows * 3) + "\n")
    env = {key: value for key, value in os.environ.items() if key != "LOFLEX_LOAD_PLUGINS"}
    result = subprocess.run(
        [sys.executable, "-m", "loflex.cli", "data", "molecules", "--set",
         f"domain.options.path={data}", "--set", f"domain.options.cache_dir={tmp_path / 'c'}",
         "--set", "domain.options.workers=1", "--limit", "1"],
        env={**env, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "skipped 3 of 27 molecules" in result.stderr


# -- molecules: a file's SAFE column is checked, not trusted ----------------------------------

GOOD_MOLECULES = ["CCO", "c1ccccc1", "CC(=O)O", "CCN", "CCCl", "CCCC", "CC=O", "CCOC", "c1ccncc1",
                  "CC(C)O", "CCCN", "CCS"]


def safe_csv(rows: list[tuple[str, str]]) -> bytes:
    return ("SMILES,SAFE\n" + "".join(f"{smiles},{safe}\n" for smiles, safe in rows)).encode()


def test_a_safe_column_that_does_not_encode_its_smiles_is_skipped_and_counted(molecules, capsys):
    from loflex_molecules.representations import encode_smiles

    good = [(s, encode_smiles(s, "safe")) for s in GOOD_MOLECULES]
    rows = [*good[:6], ("CCO", "XXXX"), ("CCCl", "CCO"), ("CCCCO", ""), *good[6:]]
    domain = molecules("safe.csv", safe_csv(rows), representation="safe")
    texts = [domain.to_text(ex.target) for split in ("train", "valid", "test")
             for ex in domain.examples(split)]
    assert sorted(texts) == sorted([safe for _, safe in good] + [encode_smiles("CCCCO", "safe")])
    err = capsys.readouterr().err
    assert re.search(r"skipped 2 of 15 molecules in '.*safe.csv' whose SAFE column does not "
                     r"encode the row's SMILES \(e.g. 'XXXX', 'CCO'\)", err), err


@pytest.mark.parametrize("rows", [
    [("CCO", "XXXX"), ("CCN", "C1CC"), ("c1ccccc1", "c16cccc8c1")],
    [("CCO", "CCN"), ("CCN", "CCO")],
], ids=["undecodable", "other-molecules"])
def test_a_safe_column_with_no_usable_row_is_refused(molecules, rows):
    with pytest.raises(DataError) as info:
        molecules("bad-safe.csv", safe_csv(rows), representation="safe").examples("train")
    assert re.fullmatch(r"no usable molecule in '.*bad-safe.csv': its SAFE column does not encode "
                        r"the row's SMILES in any row that RDKit can read; fix the SAFE column, "
                        r"or remove it to have SAFE computed from the SMILES",
                        str(info.value)), str(info.value)
