"""Smoke test of the star-graph drawing."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from loflex import Generated  # noqa: E402
from loflex_graphs.domain import StarGraphDomain  # noqa: E402
from loflex_graphs.drawing import draw_graph  # noqa: E402


def test_draw_graph_writes_a_png(tmp_path):
    domain = StarGraphDomain(StarGraphDomain.Options(difficulty="medium", cache=False,
                                                     test_size=2))
    example = domain.examples("test")[0]
    generated = Generated(tokens=example.target, prompt=example.prompt, reference=example)
    n_edges = len(example.target) // 2
    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 4))
    assert draw_graph(example, left) is None
    mappable = draw_graph(generated, right, edge_colors=list(range(n_edges)), vocab=domain.vocab)
    fig.colorbar(mappable, ax=right, label="reveal step")
    path = tmp_path / "star.png"
    fig.savefig(path)
    plt.close(fig)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
