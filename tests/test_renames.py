"""Names renamed for clarity keep their old name for one release, with a DeprecationWarning.

``Prediction.insert_rate`` is ``insert_multiplier``, ``loflex.learned_order`` is
``loflex.inspection.insertion_times`` and ``loflex.extension.assemble.Model`` is ``Assembly``.
"""

from __future__ import annotations

import importlib
import sys
import warnings

import loflex.extension.assemble
import pytest
import torch
from loflex.config import validate_run
from loflex.contracts import Prediction
from loflex.extension.assemble import Assembly, assemble
from loflex.inspection import insertion_times as new_module


def test_prediction_takes_insert_multiplier_without_a_warning():
    multiplier = torch.ones(2, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        by_keyword = Prediction(logits=torch.zeros(2, 3, 5), insert_multiplier=multiplier)
        by_position = Prediction(torch.zeros(2, 3, 5), multiplier)
    assert by_keyword.insert_multiplier is multiplier and by_position.insert_multiplier is multiplier


def test_the_insert_rate_keyword_warns_and_still_works():
    multiplier = torch.full((2, 3), 2.0)
    with pytest.warns(DeprecationWarning, match="insert_multiplier"):
        prediction = Prediction(logits=torch.zeros(2, 3, 5), insert_rate=multiplier)
    assert prediction.insert_multiplier is multiplier


def test_the_insert_rate_attribute_warns_and_still_works():
    prediction = Prediction(torch.zeros(1, 2, 5), torch.ones(1, 2))
    with pytest.warns(DeprecationWarning, match="Prediction.insert_multiplier"):
        assert prediction.insert_rate is prediction.insert_multiplier
    replacement = torch.zeros(1, 2)
    with pytest.warns(DeprecationWarning, match="Prediction.insert_multiplier"):
        prediction.insert_rate = replacement
    assert prediction.insert_multiplier is replacement


def test_both_names_at_once_or_neither_are_refused():
    with pytest.raises(TypeError, match="insert_multiplier only"):
        Prediction(torch.zeros(1, 2, 5), torch.ones(1, 2), insert_rate=torch.ones(1, 2))
    with pytest.raises(TypeError, match="needs insert_multiplier"):
        Prediction(torch.zeros(1, 2, 5))


def test_the_learned_order_module_warns_and_gives_the_insertion_times_module(monkeypatch):
    monkeypatch.delitem(sys.modules, "loflex.learned_order", raising=False)
    with pytest.warns(DeprecationWarning, match="loflex.inspection.insertion_times"):
        old = importlib.import_module("loflex.learned_order")
    assert old.insertion_times is new_module.insertion_times
    assert old.InsertionTimes is new_module.InsertionTimes
    assert old._crossing is new_module._crossing
    with pytest.raises(AttributeError):
        _ = old.no_such_name


def test_assemble_model_warns_and_is_assembly(toy):
    with pytest.warns(DeprecationWarning, match="loflex.extension.assemble.Assembly"):
        from loflex.extension.assemble import Model
    assert Model is Assembly
    with pytest.raises(AttributeError):
        _ = loflex.extension.assemble.NoSuchName
    run = toy_run()
    assert isinstance(assemble(run), Assembly)


def toy_run():
    """A small validated run on the toy domain."""
    return validate_run({"domain": {"name": "toy"}, "order": {"name": "uniform"},
                         "generator": {"name": "transformer",
                                       "options": {"layers": 1, "width": 16, "heads": 2}}})
