"""The molecules domain: build, encode/decode, state, prompts, metrics and export."""

from __future__ import annotations

import csv

import loflex
import pytest
from loflex import DataError, Domain, Generated
from loflex_molecules.domain import AugmentedExamples, MoleculeDomain
from rdkit import Chem


def build(**options):
    return loflex.build(Domain, {"name": "molecules", "options": options})


@pytest.fixture(scope="module")
def domain(small_csv, tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    return build(path=str(small_csv), column="smiles", representation="bracket-safe",
                 cache_dir=str(cache), workers=1, fcd=False)


def test_registered_through_the_entry_point():
    assert loflex.components(Domain)["molecules"] is MoleculeDomain


def test_examples_decode_to_the_source_molecules(domain):
    splits = domain.splits()
    for ex, smiles in zip(domain.examples("train")[:50], splits["train"].smiles):
        assert Chem.MolToSmiles(domain.decode(ex.target)) == smiles
        assert domain.encode(domain.to_text(ex.target)) == ex.target
    assert "<" in domain.vocab and ">" in domain.vocab


def test_state_dict_restores_the_vocabulary(domain):
    restored = MoleculeDomain(domain.options, state=domain.state_dict())
    assert restored.vocab.itos == domain.vocab.itos
    assert restored._splits is None  # restoring does not load data
    other = domain.options.model_copy(update={"representation": "safe"})
    with pytest.raises(loflex.ConfigError, match="representation 'bracket-safe'"):
        MoleculeDomain(other, state=domain.state_dict())


def test_out_of_vocabulary_tokens_raise(domain):
    with pytest.raises(DataError, match="not in the model's vocabulary"):
        domain.encode("[Se]C")


def test_all_forty_fragment_prompts_parse(domain):
    prompts = domain.fragment_prompts()
    assert len(prompts) == 40
    for _task, ex in prompts:
        assert ex.bos is False and ex.target == [] and domain.to_text(ex.prompt).endswith(".")
    ex = domain.parse_prompt("c1ccc([*])cc1")
    assert domain.to_text(ex.prompt) == "c1<1>ccccc1." and ex.bos is False
    with pytest.raises(DataError, match="no attachment point"):
        domain.parse_prompt("c1ccccc1")


def test_fragment_metrics_from_prompted_samples(domain):
    task, ex = domain.fragment_prompts()[0]  # baricitinib motif extension
    completion = domain.encode("C<2>(C)")  # closes the open attachment with an ethyl
    samples = [Generated(tokens=completion, prompt=ex.prompt)] * 3
    out = domain.metrics(samples)
    assert out["motif_extension/validity"] == pytest.approx(1.0)
    assert out["motif_extension/uniqueness"] == pytest.approx(1 / 3)
    assert "novelty" not in out


def test_metrics_and_check_domain(domain):
    samples = [Generated(tokens=ex.target) for ex in domain.examples("test")[:20]]
    samples.append(Generated(tokens=domain.encode("C(C(")))
    out = domain.metrics(samples)
    assert out["validity"] == pytest.approx(20 / 21)
    assert out["snn"] == pytest.approx(1.0)  # the samples are test molecules
    testing = pytest.importorskip("loflex.extension.testing")
    testing.check_domain(domain, splits=("train", "valid", "test"))


def test_augmented_training_examples(small_csv, tmp_path):
    aug = build(path=str(small_csv), column="smiles", augment=True, cache_dir=str(tmp_path),
                workers=1)
    train = aug.examples("train")
    assert isinstance(train, AugmentedExamples)
    draws = {tuple(train[0].target) for _ in range(15)}
    assert len(draws) > 1
    smiles = {Chem.MolToSmiles(aug.decode(list(d))) for d in draws}
    assert smiles == {aug.splits()["train"].smiles[0]}


def test_too_long_skip_and_truncate(small_csv, tmp_path, capsys):
    skip = build(path=str(small_csv), column="smiles", max_length=30, cache_dir=str(tmp_path),
                 workers=1, representation="smiles")
    n = len(skip.examples("train"))
    assert "longer than max_length=30" in capsys.readouterr().err
    trunc = build(path=str(small_csv), column="smiles", max_length=30, too_long="truncate",
                  cache_dir=str(tmp_path), workers=1, representation="smiles")
    assert len(trunc.examples("train")) > n
    assert max(len(e.target) for e in trunc.examples("train")) == 30


def test_bundled_default_data(tmp_path):
    d = build(train_size=500, valid_size=50, test_size=100, cache_dir=str(tmp_path))
    assert len(d.examples("train")) == 500 and len(d.examples("test")) <= 100
    assert d.options.representation == "safe"


def test_export_files(domain, tmp_path):
    samples = [Generated(tokens=ex.target) for ex in domain.examples("test")[:4]]
    samples += [samples[0], Generated(tokens=domain.encode("C(C("))]
    paths = domain.export(samples, tmp_path)
    assert {p.name for p in paths} == {"samples.csv", "samples.sdf", "samples.png", "samples.svg"}
    rows = list(csv.DictReader(open(tmp_path / "samples.csv")))
    assert len(rows) == 6 and [r["valid"] for r in rows].count("0") == 1
    assert 0 < float(rows[0]["qed"]) < 1
    assert len([m for m in Chem.SDMolSupplier(str(tmp_path / "samples.sdf"))]) == 5
    unique = loflex_export_unique(domain, samples, tmp_path / "u")
    assert len(unique) == 4


def loflex_export_unique(domain, samples, directory):
    from loflex_molecules.export import export_molecules

    texts = [domain.to_text(s.tokens) for s in samples]
    smiles = [domain.to_smiles(s.tokens) for s in samples]
    export_molecules(texts, smiles, directory, valid_only=True, unique_only=True)
    return list(csv.DictReader(open(directory / "samples.csv")))


def test_fragment_mode_samples_every_task_and_scores_per_task(domain):
    import torch
    from loflex.config import SampleConfig
    from loflex.default_plugins.orders import UniformOrder
    from loflex.default_plugins.transformer import TransformerGenerator
    from loflex.extension.assemble import Assembly
    from loflex.sampling.inference import generate_all

    fragments = MoleculeDomain(domain.options.model_copy(update={"prompts": "fragments"}),
                               state=domain.state_dict())
    assert fragments.conditional and not domain.conditional
    prompts = fragments.prompts("test", 80)
    assert len({tuple(p.prompt) for p in prompts}) == 40
    assert all(not p.bos and p.prompt for p in prompts)
    torch.manual_seed(0)
    generator = TransformerGenerator(
        TransformerGenerator.Options(layers=1, width=32, heads=2),
        vocab_size=len(fragments.vocab), max_length=fragments.max_length)
    model = Assembly(fragments, generator, UniformOrder(UniformOrder.Options()))
    samples = generate_all(model, SampleConfig(num_samples=40, steps=4, batch_size=40))
    assert [s.prompt for s in samples] == [p.prompt for p in prompts[:40]]
    metrics = fragments.metrics(samples)
    tasks = ("motif_extension", "scaffold_decoration", "superstructure_generation",
             "linker_design")
    assert all(f"{task}/validity" in metrics for task in tasks)


def test_draw_colours_a_molecule_and_a_partial_state(domain, tmp_path):
    example = domain.examples("test")[0]
    values = [i / len(example.target) for i in range(len(example.target))]
    path = tmp_path / "mol.png"
    assert domain.draw(example.target, values, path, title="insertion time")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 1000
    partial = example.target[: len(example.target) // 2]  # an unfinished string still draws
    assert domain.draw(partial, values[: len(partial)], tmp_path / "part.png")
    assert (tmp_path / "part.png").stat().st_size > 1000
