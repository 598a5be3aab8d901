"""Star-graph pictures: the domain's drawing, order comparisons and the report on a tiny run."""

from __future__ import annotations

import math
import struct

import pytest
from loflex import cli, load_run
from loflex.contracts import Generated
from loflex.default_plugins.orders import UniformOrder
from loflex.training.train import train
from loflex_graphs.domain import StarGraphDomain
from loflex_graphs.drawing import compare_orders, edge_values, insertion_panels
from loflex_graphs.oracle import StarOracleOrder

DOMAIN = ["domain.name=star-graph", "domain.options.difficulty=medium",
          "domain.options.cache=false", "domain.options.train_size=32",
          "domain.options.valid_size=4", "domain.options.test_size=4"]
TINY = ["generator.options.layers=1", "generator.options.width=32", "generator.options.heads=2",
        "order.options.layers=1", "order.options.width=32", "order.options.heads=2",
        "train.steps=2", "train.batch_size=8", "train.eval_every=0", "sample.steps=8"]


@pytest.fixture
def domain():
    return StarGraphDomain(StarGraphDomain.Options(difficulty="medium", cache=False,
                                                   test_size=3))


def png_size(path) -> tuple[int, int]:
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    return struct.unpack(">II", data[16:24])


def test_edge_values_take_the_later_token():
    assert edge_values([0.1, 0.4, 0.9, 0.2, 0.5]) == [0.4, 0.9]


def test_domain_draws_the_graph(tmp_path, domain):
    example = domain.examples("test")[0]
    values = [k / len(example.target) for k in range(len(example.target))]
    path = tmp_path / "graph.png"
    assert domain.draw(example.target, values, path, prompt=example.prompt, title="t") is True
    assert png_size(path) == (610, 420)
    assert domain.draw(example.target, values, tmp_path / "none.png") is False  # no graph


def test_oracle_panel_inserts_path_ends_first(domain):
    example = domain.examples("test")[1]
    panels = insertion_panels(example, {"uniform": UniformOrder(UniformOrder.Options()),
                                        "oracle": StarOracleOrder(StarOracleOrder.Options())})
    assert panels["uniform"][1] == pytest.approx([0.5] * len(example.target), abs=1e-5)
    d_max = max(example.order_hint)
    b = [math.exp(4.0 * (d / d_max - 0.5)) for d in example.order_hint]
    assert panels["oracle"][1] == pytest.approx([1 - 2 ** (-1 / v) for v in b], abs=1e-5)


def test_compare_orders_side_by_side(tmp_path, domain):
    example = domain.examples("test")[2]
    n = len(example.target)
    sample = Generated(tokens=example.target, prompt=example.prompt, reference=example)
    panels = {"learned": (example, [0.1] * n), "uniform": (example, [0.5] * n),
              "oracle": (sample, list(range(n)))}
    path = compare_orders(panels, tmp_path / "cmp.png", vocab=domain.vocab)
    assert png_size(path) == (round((3 * 4.2 + 1.1) * 100), 420)


def test_order_command_and_report_on_a_tiny_star_run(tmp_path, capsys):
    run_dir = tmp_path / "run"
    train(load_run(None, [*DOMAIN, *TINY]), run_dir, progress=False)
    picture = tmp_path / "orders.png"
    assert cli.main(["order", str(run_dir), "--example", "0", "--compare",
                     "uniform,star-oracle", "--picture", str(picture)]) == 0
    width, height = png_size(picture)
    assert (width, height) == (3 * 610, 420 + 30)  # three graph pictures with captions
    out = capsys.readouterr().out
    assert "star-oracle median" in out
    assert cli.main(["report", str(run_dir), "-n", "4", "--examples", "1"]) == 0
    page = (run_dir / "report" / "index.html").read_text()
    assert "<h2>Learned order (kumaraswamy)</h2>" in page
    assert "<h2>Reveal order against the order hint</h2>" in page
    assert png_size(run_dir / "report" / "order-hint.png") == (450, 350)
