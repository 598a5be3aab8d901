from __future__ import annotations

import pytest
from loflex import ConfigError, UnknownComponentError, load_run
from loflex.config import apply_overrides, dumps_toml, parse_override, run_to_toml
from loflex.errors import LoflexError


def test_overrides_parse_toml_values():
    assert parse_override("train.lr=3e-4") == (["train", "lr"], 3e-4)
    assert parse_override("a.b=true") == (["a", "b"], True)
    assert parse_override("domain.options.path=my file.txt") == (
        ["domain", "options", "path"], "my file.txt")
    assert apply_overrides({}, ["x.y.z=1"]) == {"x": {"y": {"z": 1}}}


def test_override_without_equals_is_a_config_error():
    with pytest.raises(ConfigError, match="no '='"):
        parse_override("train.lr")


def test_run_from_overrides_alone(toy):
    run = load_run(None, ["domain.name=toy", "train.steps=5", "order.name=uniform"])
    assert run.train.steps == 5 and run.order.name == "uniform"
    assert run.domain.options["size"] == 512  # defaults filled in


def test_missing_domain_is_explained():
    with pytest.raises(ConfigError, match="--set domain.name"):
        load_run(None, [])


def test_invalid_generator_option_names_component_and_field(toy):
    with pytest.raises(ConfigError) as err:
        load_run(None, ["domain.name=toy", "generator.options.layers=0"])
    assert str(err.value) == (
        "generator 'transformer' has invalid options: layers: Input should be greater than 0")
    assert err.value.render().startswith("Error: generator 'transformer'")


def test_several_invalid_fields_give_one_line_each(toy):
    with pytest.raises(ConfigError) as err:
        load_run(None, ["domain.name=toy", "generator.options.layers=0",
                        "generator.options.width=-1"])
    assert len(err.value.details) == 2
    assert all(line.split(":")[0] in ("layers", "width") for line in err.value.details)


def test_unknown_option_key(toy):
    with pytest.raises(ConfigError, match="unknown option"):
        load_run(None, ["domain.name=toy", "domain.options.colour=red"])


def test_unknown_section_and_wrong_type(toy):
    with pytest.raises(ConfigError, match="trian"):
        load_run(None, ["domain.name=toy", "trian.steps=3"])
    with pytest.raises(ConfigError, match="train.steps"):
        load_run(None, ["domain.name=toy", "train.steps=many"])


def test_unknown_component_lists_names(toy):
    with pytest.raises(UnknownComponentError, match="registered: .*toy"):
        load_run(None, ["domain.name=toys"])


def test_toml_syntax_error_names_the_line(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('[domain]\nname = "toy"\n[train\nsteps = 3\n')
    with pytest.raises(ConfigError, match="line 3"):
        load_run(path)


def test_missing_run_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_run(tmp_path / "nope.toml")


def test_run_round_trips_through_toml(tmp_path, toy):
    run = load_run(None, ["domain.name=toy", "train.lr=0.002", "sample.top_p=0.5"])
    path = tmp_path / "config.toml"
    path.write_text(run_to_toml(run))
    assert load_run(path) == run


def test_dumps_toml_nested():
    text = dumps_toml({"a": {"b": {"c": [1, 2]}, "d": "x"}})
    import tomllib

    assert tomllib.loads(text) == {"a": {"b": {"c": [1, 2]}, "d": "x"}}


def test_loflex_error_render():
    err = LoflexError("bad thing; do this", details=["a: b"])
    assert err.render() == "Error: bad thing; do this\n  a: b"
