"""What the plugin adds to loflex: the domain, ``--fragment`` of ``loflex sample``."""

from __future__ import annotations

import pytest
from loflex import Domain, Generated
from loflex.cli import build_parser
from loflex.extension import plugins, registry
from loflex_molecules.domain import MoleculeDomain


@pytest.fixture(autouse=True)
def molecules_plugin(monkeypatch):
    monkeypatch.setenv("LOFLEX_LOAD_PLUGINS", "molecules")
    plugins.reset()
    yield
    plugins.reset()


def test_the_plugin_registers_the_domain_and_owns_fragment():
    assert registry.owner(Domain, "molecules").plugin == "molecules"
    args = build_parser().parse_args(["sample", "model", "-o", "s.jsonl", "--fragment", "c1ccccc1."])
    assert args.prompt == "c1ccccc1."
    assert not plugins.failures


def test_the_headline_metric_is_validity():
    assert MoleculeDomain.headline_metric == "validity"


def test_csv_columns_give_the_smiles_and_validity(small_csv, cache):
    domain = MoleculeDomain(MoleculeDomain.Options(path=str(small_csv), representation="smiles",
                                                   cache_dir=str(cache)))
    benzene = Generated(tokens=domain.encode("c1ccccc1"))
    broken = Generated(tokens=domain.encode("c1cc("))
    assert domain.columns(benzene) == {"prompt": "", "text": "c1ccccc1", "smiles": "c1ccccc1",
                                       "valid": 1}
    assert domain.columns(broken)["valid"] == 0 and domain.columns(broken)["smiles"] == ""
