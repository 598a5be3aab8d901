"""The built-in ``sequences`` domain: file formats, tokenizers, splits, errors and metrics."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from loflex import ConfigError, DataError, Domain, Example, Generated, collate, components
from loflex.contracts.vocab import BOS, EOS, MASK
from loflex.default_plugins.sequence_files import length_wasserstein
from loflex.extension.registry import build, validate_options

NO_SPLIT = {"valid_fraction": 0, "test_fraction": 0}


def make(path: Path, **options) -> Domain:
    """Build the domain through the registry, as a run does."""
    return build(Domain, {"name": "sequences", "options": {"path": str(path), **options}})


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def texts(domain: Domain, split: str = "train") -> list[str]:
    return [domain.to_text(ex.target) for ex in domain.examples(split)]


# -- loading ---------------------------------------------------------------------------------
def test_registered_as_builtin():
    assert "sequences" in components(Domain)


def test_text_file_one_sequence_per_line(tmp_path):
    path = write(tmp_path, "seqs.txt", "ACGT\n\n  AAGG  \r\nTTT\n")
    domain = make(path, **NO_SPLIT)
    assert texts(domain) == ["ACGT", "AAGG", "TTT"]
    assert domain.vocab.itos[4:] == ["A", "C", "G", "T"]
    assert domain.max_target_length == 4
    assert domain.max_length == 5  # target + EOS, no prompt
    assert not domain.conditional


def test_fasta_multiline_records(tmp_path):
    text = ">sp|P1 first\nMKV\nLLA\n;a comment\n>empty\n>second\nGG\n\n>third\nAC\nD\n"
    domain = make(write(tmp_path, "prot.fasta", text), **NO_SPLIT)
    assert texts(domain) == ["MKVLLA", "GG", "ACD"]


def test_fasta_sequence_before_header_is_an_error(tmp_path):
    with pytest.raises(DataError, match="line 1 comes before the first '>' header"):
        make(write(tmp_path, "bad.fa", "MKV\n>p\nAA\n"), **NO_SPLIT)


def test_csv_column(tmp_path):
    path = write(tmp_path, "data.csv", "id,seq,score\n1,ACG,0.5\n2,,0.1\n3,\"TT\",0.2\n4,GA,1\n")
    assert texts(make(path, column="seq", **NO_SPLIT)) == ["ACG", "TT", "GA"]


def test_csv_single_column_needs_no_name(tmp_path):
    path = write(tmp_path, "one.csv", "smiles\nCCO\nC=O\n")
    assert texts(make(path, **NO_SPLIT)) == ["CCO", "C=O"]


def test_csv_unknown_column_names_the_columns(tmp_path):
    path = write(tmp_path, "data.csv", "id,seq\n1,AC\n")
    with pytest.raises(DataError, match="columns 'id', 'seq'; set domain.options.column"):
        make(path, column="sequence", **NO_SPLIT)


def test_split_is_deterministic_disjoint_and_complete(tmp_path):
    lines = [f"{'A' * (i % 7 + 1)}{'C' * (i % 5)}{i}" for i in range(40)]
    path = write(tmp_path, "many.txt", "\n".join(lines))
    a, b = make(path, seed=3), make(path, seed=3)
    splits = {s: texts(a, s) for s in ("train", "valid", "test")}
    assert [len(splits[s]) for s in ("train", "valid", "test")] == [36, 2, 2]
    assert sorted(sum(splits.values(), [])) == sorted(lines)
    assert splits == {s: texts(b, s) for s in ("train", "valid", "test")}
    other = make(path, seed=4)
    assert texts(other, "valid") + texts(other, "test") != splits["valid"] + splits["test"]


# -- tokenisation ----------------------------------------------------------------------------
def test_char_round_trip(tmp_path):
    domain = make(write(tmp_path, "s.txt", "hello world\nhold\n"), **NO_SPLIT)
    ids = domain.encode("hello")
    assert domain.vocab.decode(ids) == list("hello")
    assert domain.to_text(ids) == "hello"
    assert domain.decode(ids) == "hello"


def test_whitespace_round_trip(tmp_path):
    domain = make(write(tmp_path, "w.txt", "ALA  GLY SER\nGLY\tPRO\n"), tokenizer="whitespace",
                  **NO_SPLIT)
    assert domain.vocab.itos[4:] == ["ALA", "GLY", "PRO", "SER"]
    assert [len(ex.target) for ex in domain.examples("train")] == [3, 2]
    assert domain.to_text(domain.encode("ALA   SER GLY")) == "ALA SER GLY"


def test_regex_round_trip(tmp_path):
    pattern = r"Cl|Br|[A-Z][a-z]?|\(|\)|=|\d"
    domain = make(write(tmp_path, "m.txt", "CC(=O)Cl\nBrC1CC1\n"), tokenizer="regex",
                  pattern=pattern, **NO_SPLIT)
    assert domain.tokenize("CC(=O)Cl") == ["C", "C", "(", "=", "O", ")", "Cl"]
    assert domain.to_text(domain.encode("ClCC(Br)=O")) == "ClCC(Br)=O"


def test_regex_must_cover_every_character(tmp_path):
    path = write(tmp_path, "m.txt", "CCO\nC#N\n")
    with pytest.raises(DataError, match=r"line 2: character '#' is not matched"):
        make(path, tokenizer="regex", pattern="[A-Z]", **NO_SPLIT)


# -- prompts ---------------------------------------------------------------------------------
def test_prompt_target_split(tmp_path):
    path = write(tmp_path, "p.txt", "abc => xy\nb=>yyy\n")
    domain = make(path, separator="=>", **NO_SPLIT)
    first, second = domain.examples("train")
    assert domain.to_text(first.prompt) == "abc" and domain.to_text(first.target) == "xy"
    assert domain.to_text(second.prompt) == "b" and domain.to_text(second.target) == "yyy"
    assert domain.conditional and domain.max_prompt_length == 3
    assert domain.max_length == 3 + 1 + 3 + 1
    batch = collate([first])
    a, b, c, x, y = (domain.vocab.stoi[ch] for ch in "abcxy")
    assert batch.x_1[0].tolist() == [a, b, c, BOS, x, y, EOS]
    assert batch.fixed[0].tolist() == [True, True, True, True, False, False, True]


def test_line_without_separator_names_the_line(tmp_path):
    with pytest.raises(DataError, match="line 2 has no separator '=>'"):
        make(write(tmp_path, "p.txt", "a=>b\nab\n"), separator="=>", **NO_SPLIT)


def test_empty_target_names_the_line(tmp_path):
    with pytest.raises(DataError, match="line 1 has nothing after the separator"):
        make(write(tmp_path, "p.txt", "a=>\nb=>c\n"), separator="=>", **NO_SPLIT)


def test_parse_prompt_of_unconditional_data_has_no_bos(tmp_path):
    domain = make(write(tmp_path, "s.txt", "ACGT\nCA\n"), **NO_SPLIT)
    example = domain.parse_prompt("AC")
    assert example.prompt == domain.encode("AC") and example.bos is False


# -- vocabulary restore ----------------------------------------------------------------------
def test_state_restores_vocabulary_without_reading_the_file(tmp_path):
    path = write(tmp_path, "s.txt", "GATTACA\nCAT\nTAG\n")
    domain = make(path, **NO_SPLIT)
    state = json.loads(json.dumps(domain.state_dict()))
    path.unlink()
    restored = build(Domain, {"name": "sequences", "options": {"path": str(path)}}, state=state)
    assert restored.vocab.itos == domain.vocab.itos
    assert restored.max_length == domain.max_length == 8
    assert restored.encode("TACT") == domain.encode("TACT")
    with pytest.raises(DataError, match="does not exist"):
        restored.examples("train")


def test_restored_vocabulary_rejects_new_tokens(tmp_path):
    path = write(tmp_path, "s.txt", "AC\nCA\n")
    state = make(path, **NO_SPLIT).state_dict()
    path.write_text("ACG\nCA\n")
    spec = {"name": "sequences", "options": {"path": str(path), **NO_SPLIT}}
    restored = build(Domain, spec, state=state)
    with pytest.raises(DataError, match="'G'"):
        restored.examples("train")


# -- errors a user's file can cause ----------------------------------------------------------
def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="does not exist; check domain.options.path"):
        make(tmp_path / "nope.txt")


def test_empty_file(tmp_path):
    with pytest.raises(DataError, match="contains no sequences"):
        make(write(tmp_path, "e.txt", "\n  \n\n"))


def test_one_line_is_too_little_to_split(tmp_path):
    with pytest.raises(DataError, match="1 usable sequence, too few to split"):
        make(write(tmp_path, "one.txt", "ACGT\n"))


def test_undecodable_bytes_name_the_line(tmp_path):
    path = tmp_path / "bin.txt"
    path.write_bytes(b"ACGT\nAC\xffGT\nTT\n")
    with pytest.raises(DataError, match=r"line 2 has bytes that are not UTF-8 \(0xff\)"):
        make(path, **NO_SPLIT)


def test_too_long_skipped_counted_and_reported_once(tmp_path, capsys):
    path = write(tmp_path, "l.txt", "AAAAAA\nCC\nGGGGG\nTTT\n")
    domain = make(path, max_length=4, **NO_SPLIT)
    assert texts(domain) == ["CC", "TTT"]
    assert domain.report.too_long == 2
    notes = [line for line in capsys.readouterr().err.splitlines() if line]
    assert len(notes) == 1 and "2 longer than max_length=4 tokens were skipped" in notes[0]


def test_too_long_truncated(tmp_path, capsys):
    path = write(tmp_path, "l.txt", "AAAAAA\nCC\nGGGGG\n")
    domain = make(path, max_length=4, too_long="truncate", **NO_SPLIT)
    assert texts(domain) == ["AAAA", "CC", "GGGG"]
    assert domain.max_target_length == 4
    assert "2 longer than max_length=4 tokens were truncated" in capsys.readouterr().err


def test_character_outside_alphabet_names_line_and_character(tmp_path):
    path = write(tmp_path, "dna.txt", "ACGT\nACNGT\nGG\n")
    with pytest.raises(DataError, match=r"line 2: character 'N' is not in the alphabet"):
        make(path, alphabet="ACGT", **NO_SPLIT)


def test_outside_alphabet_skipped_by_option(tmp_path, capsys):
    path = write(tmp_path, "dna.txt", "ACGT\nACNGT\nGG\n")
    domain = make(path, alphabet="ACGT", outside_alphabet="skip", **NO_SPLIT)
    assert texts(domain) == ["ACGT", "GG"]
    assert "1 with tokens outside the alphabet were skipped" in capsys.readouterr().err


def test_whitespace_alphabet_is_a_token_list(tmp_path):
    path = write(tmp_path, "w.txt", "ALA GLY\nGLY XAA\n")
    with pytest.raises(DataError, match="line 2: token 'XAA' is not in the alphabet"):
        make(path, tokenizer="whitespace", alphabet="ALA GLY", **NO_SPLIT)


def test_reserved_token_is_an_error(tmp_path):
    path = write(tmp_path, "w.txt", "a <mask> b\nb a\n")
    with pytest.raises(DataError, match="reserved token '<mask>'"):
        make(path, tokenizer="whitespace", **NO_SPLIT)


@pytest.mark.parametrize("options, message", [
    ({"tokenizer": "regex"}, "needs a pattern"),
    ({"tokenizer": "regex", "pattern": "[A-"}, "not a valid regex"),
    ({"valid_fraction": 0.5, "test_fraction": 0.5}, "must be below 1"),
    ({"tokeniser": "char"}, "unknown option"),
])
def test_invalid_options(tmp_path, options, message):
    with pytest.raises(ConfigError, match=message):
        validate_options(Domain, "sequences", {"path": str(tmp_path / "x.txt"), **options})


def test_path_is_stored_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    options = validate_options(Domain, "sequences", {"path": "rel/data.txt"})
    assert options.path == str(tmp_path / "rel" / "data.txt")


# -- decoding and metrics --------------------------------------------------------------------
def test_decode_rejects_special_and_unknown_ids(tmp_path):
    domain = make(write(tmp_path, "s.txt", "AC\nCA\n"), **NO_SPLIT)
    ids = domain.encode("AC")
    assert domain.decode(ids) == "AC"
    assert domain.decode(ids + [MASK]) is None
    assert domain.decode(ids + [len(domain.vocab)]) is None


def test_unconditional_metrics_hand_computed(tmp_path):
    domain = make(write(tmp_path, "s.txt", "AB\nABC\nABCD\n"), **NO_SPLIT)
    samples = [Generated(tokens=domain.encode(s)) for s in ("AB", "AB", "C")]
    m = domain.metrics(samples)
    # distinct {AB, C}; AB is a training sequence; lengths [2, 2, 1] vs data [2, 3, 4]
    assert m["num_samples"] == 3
    assert m["uniqueness"] == pytest.approx(2 / 3)
    assert m["novelty"] == pytest.approx(1 / 2)
    assert m["mean_length"] == pytest.approx(5 / 3)
    assert m["data_mean_length"] == pytest.approx(3)
    assert m["length_abs_diff"] == pytest.approx(4 / 3)
    # |F_s - F_d| is 1/3 on [1,2), 2/3 on [2,3), 1/3 on [3,4)
    assert m["length_wasserstein"] == pytest.approx(4 / 3)
    assert "exact_match" not in m
    with_reference = [Generated(tokens=domain.encode("C"), reference=domain.examples("train")[0])]
    assert domain.metrics(with_reference)["uniqueness"] == 1.0  # no prompts: no exact match


def test_exact_match_against_references(tmp_path):
    domain = make(write(tmp_path, "p.txt", "a>xy\nb>yx\nc>xx\n"), separator=">", **NO_SPLIT)
    refs = domain.examples("train")
    samples = [
        Generated(tokens=list(refs[0].target), prompt=refs[0].prompt, reference=refs[0]),
        Generated(tokens=list(refs[0].target), prompt=refs[1].prompt, reference=refs[1]),
        Generated(tokens=list(refs[2].target)[:1], prompt=refs[2].prompt, reference=refs[2]),
        Generated(tokens=list(refs[2].target), prompt=refs[2].prompt, reference=refs[2]),
    ]
    m = domain.metrics(samples)
    assert m["exact_match"] == pytest.approx(2 / 4)
    assert m["num_samples"] == 4


def test_length_wasserstein_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = random.Random(0)
    for _ in range(20):
        a = [rng.randint(0, 30) for _ in range(rng.randint(1, 40))]
        b = [rng.uniform(0, 30) for _ in range(rng.randint(1, 40))]
        assert length_wasserstein(a, b) == pytest.approx(stats.wasserstein_distance(a, b))


def test_passes_the_domain_contract_checks(tmp_path):
    from loflex.extension.testing import check_domain

    lines = [f"{'AC' * (i % 4 + 1)}G{'T' * (i % 3)}" for i in range(30)]
    check_domain(make(write(tmp_path, "s.txt", "\n".join(lines))))


def test_example_layout_of_prompted_domain_is_an_example(tmp_path):
    domain = make(write(tmp_path, "p.txt", "ab|c\nb|cc\n"), separator="|", **NO_SPLIT)
    assert all(isinstance(ex, Example) and ex.bos for ex in domain.examples("train"))


# -- one command line ------------------------------------------------------------------------
def loflex_command() -> list[str]:
    script = Path(sys.executable).with_name("loflex")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from loflex.cli import main; sys.exit(main())"]


@pytest.mark.slow
def test_trains_from_one_command_line(tmp_path):
    rng = random.Random(0)
    lines = ["".join(rng.choice("ACGT") for _ in range(rng.randint(3, 12))) for _ in range(60)]
    data = write(tmp_path, "my.txt", "\n".join(lines))
    run_dir = tmp_path / "run"
    tiny = ["generator.name=transformer", "generator.options.layers=1",
            "generator.options.width=32", "generator.options.heads=2", "order.name=uniform",
            "train.steps=3", "train.batch_size=8", "train.threads=1"]
    cmd = loflex_command() + ["train", "--set", "domain.name=sequences",
                              "--set", f"domain.options.path={data}"]
    for item in tiny:
        cmd += ["--set", item]
    env = {**os.environ, "LOFLEX_LOAD_PLUGINS": ""}
    result = subprocess.run(cmd + ["-o", str(run_dir)], capture_output=True, text=True,
                            timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    assert (run_dir / "config.toml").is_file()
    assert (run_dir / "checkpoints" / "latest").is_file()
    assert str(data) in (run_dir / "config.toml").read_text()
    scores = tmp_path / "metrics.json"
    result = subprocess.run(loflex_command() + ["evaluate", str(run_dir), "-n", "8", "--steps",
                                                "8", "-o", str(scores)],
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    assert "uniqueness" in scores.read_text() and "length_wasserstein" in scores.read_text()


def test_a_path_naming_an_unknown_users_home_stays_literal(tmp_path, monkeypatch):
    """``~nobody...`` is not a home directory here: the path is taken as written (and a
    missing file is the usual one-line error), not a crash while expanding it."""
    monkeypatch.chdir(tmp_path)
    options = validate_options(Domain, "sequences", {"path": "~no-such-user-0/seqs.txt"})
    assert options.path == str(tmp_path / "~no-such-user-0" / "seqs.txt")
    with pytest.raises(DataError, match="no-such-user-0"):
        make(Path("~no-such-user-0/seqs.txt")).examples("train")
