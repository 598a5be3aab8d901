"""Learning diagnostics against hand-computed values, and ``loflex diagnose`` end to end."""

from __future__ import annotations

import json
import math
import statistics

import pytest
import torch
import torch.nn.functional as F
from loflex import load_run
from loflex.cli import main
from loflex.contracts import Example, Prediction
from loflex.contracts.vocab import MASK, PAD, SPECIAL_TOKENS
from loflex.default_plugins.orders import LeftToRightOrder, UniformOrder
from loflex.diffusion.batch import collate
from loflex.diffusion.order import EventTimes
from loflex.diffusion.process import noise
from loflex.extension.hookspecs import hookimpl
from loflex.extension.testing import ToyDomain, registered
from loflex.inspection import diagnostics
from loflex.training.train import train
from torch import nn

V = 12  # four special tokens and the data ids 4..11
BIG = 30.0
TINY = ["--set", "generator.options.layers=1", "--set", "generator.options.width=32",
        "--set", "generator.options.heads=2", "--set", "train.batch_size=8",
        "--set", "train.log_every=1", "--set", "train.eval_batches=1"]
AUX = ["order.options.layers=1", "order.options.width=32", "order.options.heads=2"]


class CopyGenerator(nn.Module):
    """Puts all mass on an unmasked data-token neighbour (left first), uniform otherwise."""

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, real: torch.Tensor) -> Prediction:
        data = real & (x_t >= len(SPECIAL_TOKENS))  # (B, L)
        left, left_ok = F.pad(x_t[:, :-1], (1, 0), value=PAD), F.pad(data[:, :-1], (1, 0))
        right, right_ok = F.pad(x_t[:, 1:], (0, 1), value=PAD), F.pad(data[:, 1:], (0, 1))
        choice = torch.where(left_ok, left, torch.where(right_ok, right, -1))  # (B, L)
        copy = (x_t == MASK) & (choice >= 0)
        logits = torch.zeros(*x_t.shape, V)
        logits[copy, choice[copy]] = BIG
        return Prediction(logits, torch.ones(x_t.shape, dtype=torch.float32))


# -- one hand-built noisy batch ---------------------------------------------------------------

def hand_batch():
    """Three rows noised by hand at t = 0.5, 0.05 and 0.95.

    A: target 4 5 6 7 8 -> x_t = 4 [M:7] EOS; 5 and 6 dropped left of slot 1, 8 left of EOS.
    B: prompt 9, target 4 4 -> x_t = 9 BOS 4 [M:4] EOS; the masked 4 shows its twin.
    C: prompt 4, target 4 5 -> x_t = 4 BOS [M:4] 5 EOS; its twin is only in the prompt.
    """
    batch = collate([Example(target=[4, 5, 6, 7, 8]), Example(target=[4, 4], prompt=[9]),
                     Example(target=[4, 5], prompt=[4])])
    t_in = torch.tensor([[0.2, 0.8, 0.6, 0.1, 0.7, 0.0],
                         [0.0, 0.0, 0.01, 0.03, 0.0, 0.0],
                         [0.0, 0.0, 0.1, 0.1, 0.0, 0.0]])
    t_um = torch.tensor([[0.3, 0.9, 0.9, 0.9, 0.9, 0.0],
                         [0.0, 0.0, 0.02, 0.5, 0.0, 0.0],
                         [0.0, 0.0, 0.99, 0.2, 0.0, 0.0]])
    t = torch.tensor([0.5, 0.05, 0.95])
    hazard_in = torch.tensor([[1.0, 2.0, 3.0, 4.0, 5.0, 0.0], [0.0] * 6, [0.0] * 6])
    return batch, noise(batch, EventTimes(t_in, t_um), t, hazard_in), t


def hand_prediction() -> Prediction:
    logits = torch.zeros(3, 5, V)
    logits[0, 1, 7] = math.log(3.0)  # A's masked 7: right, p = 3 / (V + 2)
    logits[2, 2, 5] = 2.0  # C's masked 4: copies the 5, p(4) = 1 / (V - 1 + e^2)
    insert_rate = torch.tensor([[1.0, 1.5, 4.0, 0.0, 0.0],
                                [9.0, 9.0, 0.5, 0.0, 0.25],  # slots 0, 1: prompt and BOS
                                [7.0, 7.0, 0.0, 0.1, 0.2]])
    return Prediction(logits, insert_rate)


def hand_figures():
    batch, noisy, t = hand_batch()
    base_h = torch.tensor([2.0, 1.0, 4.0])
    insertion = torch.tensor([1.0, 2.0, 3.0])
    return diagnostics.slot_figures(batch, noisy, hand_prediction(), t, base_h, insertion)


def test_the_hand_batch_is_noised_as_described():
    _, noisy, _ = hand_batch()
    assert noisy.x_t.tolist() == [[4, MASK, 3, 0, 0], [9, 2, 4, MASK, 3], [4, 2, MASK, 5, 3]]
    assert noisy.gaps[0].tolist()[:3] == [0, 2, 1]


def test_time_bins_are_floor_of_t_times_bins_with_one_clamped_in():
    t = torch.tensor([0.0, 0.0999, 0.1, 0.55, 0.95, 0.9999, 1.0], dtype=torch.float64)
    assert diagnostics.time_bins(t, 10).tolist() == [0, 0, 1, 5, 9, 9, 9]
    assert diagnostics.time_bins(t, 4).tolist() == [0, 0, 0, 2, 3, 3, 3]


def test_visible_twins_count_the_target_part_only():
    figures = hand_figures()
    assert figures.masked.tolist() == [[False, True, False, False, False],
                                       [False, False, False, True, False],
                                       [False, False, True, False, False]]
    assert figures.visible.nonzero().tolist() == [[1, 3]]  # C's twin in the prompt is not seen


def test_open_gaps_leave_out_prompt_and_bos_slots():
    assert hand_figures().open.tolist() == [[True, True, True, False, False],
                                            [False, False, True, True, True],
                                            [False, False, True, True, True]]


def test_token_figures_by_hand():
    sums = diagnostics.bin_figures(hand_figures(), 10)
    ce_right, ce_uniform = math.log((V + 2) / 3), math.log(V)
    ce_copied_wrong = math.log(V - 1 + math.e ** 2)
    empty = [None] * 10
    assert sums.means("ce_visible") == pytest.approx([ce_uniform] + empty[1:], abs=1e-6)
    assert sums.means("accuracy_visible") == [0.0] + empty[1:]
    other = empty.copy()
    other[5], other[9] = ce_right, ce_copied_wrong
    assert sums.means("ce_other") == pytest.approx(other, abs=1e-6)
    assert sums.means("accuracy_other") == [None] * 5 + [1.0, None, None, None, 0.0]
    assert sums.overall("ce_other") == pytest.approx((ce_right + ce_copied_wrong) / 2, abs=1e-6)
    assert sums.counts("ce_visible") == [1] + [0] * 9
    assert sums.counts("ce_other") == [0] * 5 + [1, 0, 0, 0, 1]


def test_insertion_loss_and_missing_counts_by_hand():
    sums = diagnostics.bin_figures(hand_figures(), 10)
    at = {0: "B", 5: "A", 9: "C"}
    expected = {  # per open gap: predicted rate, dropped tokens, Lambda / h
        "A": ([1.0, 1.5, 4.0], [0, 2, 1], [0.0, 5 / 2, 5 / 2]),
        "B": ([0.5, 0.0, 0.25], [0, 0, 0], [0.0, 0.0, 0.0]),
        "C": ([0.0, 0.1, 0.2], [0, 0, 0], [0.0, 0.0, 0.0]),
    }
    insertion = {"A": 1.0, "B": 2.0, "C": 3.0}
    for k in range(10):
        row = at.get(k)
        got = [sums.means(n)[k] for n in
               ("missing_predicted", "missing_true", "missing_target", "insertion")]
        if row is None:
            assert got == [None] * 4
            continue
        predicted, true, target = expected[row]
        assert got == pytest.approx([sum(predicted) / 3, sum(true) / 3, sum(target) / 3,
                                     insertion[row]], abs=1e-6)
    errors = [abs(p - q) for row in expected.values() for p, q in zip(row[0], row[2])]
    assert errors == pytest.approx([1.0, 1.0, 1.5, 0.5, 0.0, 0.25, 0.0, 0.1, 0.2])
    assert sums.overall("missing_error") == pytest.approx(sum(errors) / 9, abs=1e-6)


# -- a model that only copies -----------------------------------------------------------------

def test_a_copying_model_is_right_exactly_on_visible_twins():
    """Targets ``k k`` after prompt ``k``: a masked k is visible iff the other k is shown,
    and then it is the masked slot's only data-token neighbour (BOS is on the left)."""
    examples = [Example(target=[k, k], prompt=[k]) for k in range(4, V)]
    found = diagnostics.diagnose(
        CopyGenerator(), UniformOrder(UniformOrder.Options()), [collate(examples)],
        rng=torch.Generator().manual_seed(0), normalisation="per-sequence",
        length_scale=3.0, repeats=60, spread=False)
    sums = found.sums
    visible, other = sums.counts("ce_visible"), sums.counts("ce_other")
    assert sum(1 for n in visible if n) >= 5 and sum(other) > 0
    for k in range(10):
        if visible[k]:
            assert sums.means("accuracy_visible")[k] == 1.0
            assert sums.means("ce_visible")[k] == pytest.approx(0.0, abs=(V - 1) * math.exp(-BIG) * 2)
        if other[k]:
            assert sums.means("accuracy_other")[k] == 0.0
            assert sums.means("ce_other")[k] == pytest.approx(math.log(V), abs=1e-5)
    assert found.spread == [] and found.hint is None


# -- the order ---------------------------------------------------------------------------------

def test_b_in_spread_of_left_to_right_by_hand():
    order = LeftToRightOrder(LeftToRightOrder.Options(sharpness=4.0))
    batches = [collate([Example(target=[4, 5, 6, 7, 8]), Example(target=[4, 5, 6], prompt=[9])])]
    e = math.e
    values = [e ** 2, e, 1.0, 1 / e, e ** -2] + [e ** 2, 1.0, e ** -2]  # exp(4 (1/2 - r_j))
    for t in (0.1, 0.9):
        spread = diagnostics.b_in_spread(order, batches, t)
        assert [spread.mean, spread.std, spread.min, spread.max] == pytest.approx(
            [statistics.fmean(values), statistics.pstdev(values), e ** -2, e ** 2], rel=1e-6)


def test_hint_correlation_of_left_to_right_by_hand():
    """Left-to-right inserts earlier positions earlier: medians rise along the sequence."""
    order = LeftToRightOrder(LeftToRightOrder.Options(sharpness=4.0))
    examples = [Example(target=[4, 5, 6, 7], side=[0, 1, 2, 3]),  # rho = 1
                Example(target=[4, 5, 6, 7], side=[0, 0, 1, 1]),  # rho = 4 / (2 sqrt 5)
                Example(target=[4, 5, 6]),  # no hint
                Example(target=[4, 5, 6], side=[2, 2, 2])]  # constant hint: undefined
    hint = diagnostics.hint_correlation(order, examples)
    assert hint.examples == 2
    assert hint.rho == pytest.approx((1 + 2 / math.sqrt(5)) / 2, abs=1e-9)
    assert diagnostics.hint_correlation(UniformOrder(UniformOrder.Options()), examples) is None


# -- training and the command line ---------------------------------------------------------------

class SideToyDomain(ToyDomain):
    """The toy domain with each target token's position as its order hint."""

    name = "side-toy"

    def examples(self, split: str):
        return [Example(target=e.target, prompt=e.prompt, side=list(range(len(e.target))))
                for e in super().examples(split)]


class SideToyPlugin:
    @hookimpl
    def register_domains(self, register):
        register(SideToyDomain)


@pytest.fixture
def side_toy():
    with registered(SideToyPlugin(), name="side-toy"):
        yield


def metrics(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_training_logs_the_figures_without_changing_the_run(tmp_path, side_toy):
    base = ["domain.name=side-toy", "order.name=kumaraswamy", *AUX, "train.steps=4",
            "train.checkpoint_every=0", *[v for v in TINY if v != "--set"]]
    for name, every in (("with", 2), ("without", 0)):
        train(load_run(None, [*base, f"train.eval_every={every}"]), tmp_path / name,
              progress=False)
    losses = [[r["loss"] for r in metrics(tmp_path / n) if "loss" in r] for n in ("with", "without")]
    assert losses[0] == losses[1]
    evals = [r for r in metrics(tmp_path / "with") if "valid_loss" in r]
    assert [r["step"] for r in evals] == [2, 4]
    for record in evals:
        assert len(record["diag/ce_other"]) == 10 and len(record["diag/insertion"]) == 10
        assert record["diag/missing_mae"] >= 0
        assert record["diag/b_in_min@0.5"] <= record["diag/b_in_mean@0.5"] \
            <= record["diag/b_in_max@0.5"]
        assert -1.0 <= record["diag/hint_rho"] <= 1.0


def test_diagnose_command_json_and_picture(tmp_path, side_toy, capsys):
    run_dir = tmp_path / "run"
    assert main(["train", "--set", "domain.name=side-toy", "--set", "order.name=left-to-right",
                 "--set", "train.steps=2", "--set", "train.eval_every=0", *TINY,
                 "--no-progress", "-o", str(run_dir)]) == 0
    capsys.readouterr()
    picture = tmp_path / "diag.png"
    assert main(["diagnose", str(run_dir), "--examples", "12", "--repeats", "3", "--json",
                 "--picture", str(picture), "--split", "test"]) == 0
    out = capsys.readouterr().out
    report = json.loads(out[:out.rindex("}") + 1])
    assert report["examples"] == 12 and report["split"] == "test"
    assert report["edges"] == pytest.approx([k / 10 for k in range(11)])
    assert sum(report["curves"]["sequences"]) == 36
    assert report["order"]["name"] == "left-to-right" and not report["order"]["learned"]
    assert report["order"]["hint"] == {"rho": pytest.approx(1.0), "examples": 12}
    assert [s["t"] for s in report["order"]["b_in"]] == [0.1, 0.5, 0.9]
    assert report["order"]["b_in"][0]["max"] == pytest.approx(math.exp(2.0), rel=1e-6)
    from PIL import Image

    assert Image.open(picture).size == (1100, 700)
    assert main(["diagnose", str(run_dir), "--examples", "4", "--picture", str(picture)]) == 1
    assert "--force" in capsys.readouterr().err
    assert main(["diagnose", str(run_dir), "--examples", "4"]) == 0
    assert "Spearman(median insertion time, order hint) = 1.000" in capsys.readouterr().out


def test_diagnose_refuses_bad_counts(tmp_path, capsys):
    assert main(["diagnose", str(tmp_path), "--examples", "0"]) == 1
    assert "--examples must be at least 1" in capsys.readouterr().err
