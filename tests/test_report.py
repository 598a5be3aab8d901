"""The report, the ``order`` and ``sample --trajectory`` commands, end to end on a tiny model."""

from __future__ import annotations

import base64
import json
import math
import re
import struct

import pytest
from loflex import cli, load_run
from loflex.contracts import Example, Generated
from loflex.inspection import report
from loflex.inspection.report import (
    order_correlation_figure,
    order_hint_figure,
    rank_correlation,
    training_curves,
)
from loflex.inspection.trajectory import read_trajectories
from loflex.training.train import train

TINY = ["domain.name=toy", "domain.options.size=16", "generator.options.layers=1",
        "generator.options.width=32", "generator.options.heads=2", "order.options.layers=1",
        "order.options.width=32", "order.options.heads=2", "train.steps=3",
        "train.batch_size=8", "train.eval_every=0", "train.log_every=1", "sample.steps=8",
        "sample.batch_size=4"]


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


@pytest.fixture
def run_dir(tmp_path, toy):
    directory = tmp_path / "run"
    train(load_run(None, TINY), directory, progress=False)
    return directory


def test_report_of_a_trained_run(run_dir, tmp_path, capsys):
    out = tmp_path / "report"
    assert cli.main(["report", str(run_dir), "-o", str(out), "-n", "4", "--examples", "2"]) == 0
    page = (out / "index.html").read_text()
    for heading in ("Training curves", "Sampler settings", "Metrics", "Samples",
                    "Generation trajectory", "Learned order (kumaraswamy)"):
        assert f"<h2>{heading}</h2>" in page
    assert "exact_match" in page
    images = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page)
    assert len(images) >= 6  # curves, samples, heatmap, filmstrip, two order pictures
    for data in images:
        width, height = png_size(base64.b64decode(data))
        assert width > 100 and height > 100
    assert png_size((out / "curves.png").read_bytes()) == (2 * 450, 320)  # loss terms, lr
    assert "http" not in page.replace("http-equiv", "")  # nothing to fetch
    assert cli.main(["report", str(run_dir), "-o", str(out)]) == 1
    assert "--force" in capsys.readouterr().err
    assert cli.main(["report", str(run_dir), "-o", str(out), "-n", "2", "--examples", "0",
                     "--force"]) == 0


def test_order_command_prints_every_token(run_dir, tmp_path, capsys):
    picture = tmp_path / "order.png"
    code = cli.main(["order", str(run_dir), "--input", "3 1 4", "--prompt", "4 1 3",
                     "--compare", "uniform", "--picture", str(picture), "--json"])
    assert code == 0
    shown = json.loads(capsys.readouterr().out.split("\nwrote")[0])
    assert shown["tokens"] == ["3", "1", "4"]
    learned = shown["kumaraswamy"]["median"]
    assert len(learned) == 3 and all(0 < v < 1 for v in learned)
    assert shown["uniform"]["median"] == pytest.approx([0.5] * 3, abs=1e-5)
    assert picture.stat().st_size > 1000
    assert cli.main(["order", str(run_dir), "--example", "0"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert "median" in table[0] and len(table) >= 3
    assert cli.main(["order", str(run_dir), "--example", "999"]) == 1
    assert "out of range" in capsys.readouterr().err


def test_sample_writes_readable_trajectories(run_dir, tmp_path):
    samples, folder = tmp_path / "s.jsonl", tmp_path / "traj"
    assert cli.main(["sample", str(run_dir), "-n", "3", "-o", str(samples),
                     "--trajectory", str(folder)]) == 0
    trajectories = read_trajectories(folder)
    records = [json.loads(line) for line in samples.read_text().splitlines()]
    assert len(trajectories) == 3
    for trajectory, record in zip(trajectories, records):
        assert trajectory.num_states == 9  # 8 steps
        final = trajectory.state(-1)
        assert [final[i] for i in trajectory.generated_slots()] == record["tokens"]
        initial = [v for v, step in zip(trajectory.tokens, trajectory.insert_step) if step < 0]
        assert trajectory.state(0) == initial  # the prompt, BOS and EOS


def test_report_without_checkpoint_still_draws_curves(tmp_path, toy):
    run = tmp_path / "bare"
    run.mkdir()
    from loflex.config import run_to_toml

    (run / "config.toml").write_text(run_to_toml(load_run(None, TINY)))
    lines = [{"step": s, "loss": 3.0 / s, "lr": 1e-3, "unmask": 1.0 / s} for s in range(1, 6)]
    lines.append({"step": 5, "valid_loss": 0.7})
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    assert cli.main(["report", str(run)]) == 0
    page = (run / "report" / "index.html").read_text()
    assert "No model pictures" in page
    assert png_size((run / "report" / "curves.png").read_bytes()) == (3 * 450, 320)


def test_training_curves_skip_empty_groups(tmp_path):
    assert training_curves([], tmp_path / "none.png") is None
    path = training_curves([{"step": 1, "loss": 1.0}, {"step": 2, "loss": math.nan}],
                           tmp_path / "c.png")
    assert png_size(path.read_bytes()) == (450, 320)


def test_rank_correlation_by_hand():
    assert rank_correlation([1, 2, 3], [30, 20, 10]) == pytest.approx(-1.0)
    # ranks with ties: x -> (0.5, 0.5, 2), y -> (0, 1, 2): rho = 0.75 / sqrt(1.5 * 2) ... by hand
    rx, ry = [-0.5, -0.5, 1.0], [-1.0, 0.0, 1.0]
    expected = sum(a * b for a, b in zip(rx, ry)) / math.sqrt(sum(a * a for a in rx) *
                                                              sum(b * b for b in ry))
    assert rank_correlation([1, 1, 2], [1, 2, 3]) == pytest.approx(expected)
    assert rank_correlation([1, 1], [1, 2]) is None


def test_order_hint_figure(tmp_path):
    reference = Example(target=[5, 6, 7, 8], order_hint=[3.0, 2.0, 1.0, 0.0])
    ends_first = Generated(tokens=[5, 6, 7, 8], reference=reference, reveal_step=[0, 1, 2, 3])
    result = order_hint_figure([ends_first, Generated(tokens=[5])], tmp_path / "c.png")
    assert result is not None
    path, rho = result
    assert rho == pytest.approx(-1.0)
    assert png_size(path.read_bytes()) == (450, 350)
    assert order_hint_figure([Generated(tokens=[5])], tmp_path / "n.png") is None
    assert order_correlation_figure is order_hint_figure, "the former name stays one release"


def test_the_report_names_no_plugin():
    with open(report.__file__, encoding="utf-8") as handle:
        source = handle.read().lower()
    for word in ("junction", "star", "graph", "molecule", "smiles"):
        assert not re.search(rf"\b{word}s?\b", source), f"loflex/inspection/report.py mentions '{word}'"
