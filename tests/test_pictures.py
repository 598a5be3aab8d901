"""Pictures: files exist, are PNGs of the documented pixel size, and show the right states."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from loflex.contracts import Generated
from loflex.contracts.vocab import BOS, EOS
from loflex.extension.testing import ToyDomain
from loflex.inspection import pictures
from loflex.inspection.trajectory import SampleTrajectory

DPI = pictures.DPI


def png_size(path) -> tuple[int, int]:
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert len(data) > 1000, "suspiciously small image"
    return struct.unpack(">II", data[16:24])


def hand_trajectory() -> SampleTrajectory:
    # prompt 5, BOS, then 8 (inserted step 1, revealed step 2), 7 (inserted 0, revealed 1), EOS
    return SampleTrajectory(tokens=[5, BOS, 8, 7, EOS], pieces=["1", "<bos>", "4", "3", "<eos>"],
                            insert_step=[-1, -1, 1, 0, -1], reveal_step=[-1, -1, 2, 1, -1],
                            t=[0.0, 0.25, 0.5, 0.75], text="4 3")


class DrawingDomain(ToyDomain):
    """A toy domain with its own (trivial) picture, to check the domain is asked first."""

    def draw(self, tokens, values, path, *, prompt=(), title=""):
        from matplotlib.figure import Figure

        fig = Figure(figsize=(2, 2))
        fig.subplots().plot(values)
        fig.savefig(path, dpi=DPI)
        return True


@pytest.fixture
def domain():
    return ToyDomain(ToyDomain.Options(size=4))


def test_token_strip_size(tmp_path):
    path = pictures.token_strip(list("abcdefghij"), np.linspace(0, 1, 10), tmp_path / "s.png",
                                title="strip", label="time")
    assert png_size(path) == (round((0.45 * 10 + 1.5) * DPI), round(1.8 * DPI))
    short = pictures.token_strip(["a"], [0.3], tmp_path / "short.png")
    assert png_size(short) == (4 * DPI, round(1.8 * DPI))


def test_state_matrix_by_hand():
    matrix = pictures.state_matrix(hand_trajectory(), [0, 2, 3])
    expected = [[2, 2, 2, 2],   # prompt token: always there, never masked
                [0, 0, 1, 2],   # inserted at step 1 (state 2), revealed at step 2 (state 3)
                [0, 1, 2, 2]]   # inserted at step 0, revealed at step 1
    assert matrix.tolist() == expected


def test_trajectory_heatmap_size(tmp_path):
    path = pictures.trajectory_heatmap(hand_trajectory(), tmp_path / "h.png")
    assert png_size(path) == (7 * DPI, round(2.5 * DPI))  # 2 rows: the minimum height
    path = pictures.trajectory_heatmap(hand_trajectory(), tmp_path / "all.png", include_fixed=True)
    assert png_size(path) == (7 * DPI, round(2.5 * DPI))


def test_draw_values_falls_back_to_a_token_strip(tmp_path, domain):
    path = pictures.draw_values(domain, [5, 6, 7], [0.1, 0.5, 0.9], tmp_path / "v.png")
    assert png_size(path) == (4 * DPI, round(1.8 * DPI))


def test_draw_values_uses_the_domain_picture(tmp_path):
    drawing = DrawingDomain(ToyDomain.Options(size=4))
    path = pictures.draw_values(drawing, [5, 6, 7], [0.1, 0.5, 0.9], tmp_path / "v.png")
    assert png_size(path) == (2 * DPI, 2 * DPI)


def test_side_by_side_and_tiles(tmp_path, domain):
    values = {"learned": [0.1, 0.2, 0.9], "uniform": [0.5, 0.5, 0.5]}
    rows = pictures.side_by_side(domain, [5, 6, 7], values, tmp_path / "rows.png")
    assert png_size(rows) == (round((0.45 * 3 + 3.0) * DPI), round((0.6 * 2 + 1.0) * DPI))
    drawing = DrawingDomain(ToyDomain.Options(size=4))
    tiles = pictures.side_by_side(drawing, [5, 6, 7], values, tmp_path / "tiles.png")
    assert png_size(tiles) == (2 * 2 * DPI, round((2 + 0.3) * DPI))  # two 2-inch images


def test_filmstrip_and_samples(tmp_path, domain):
    strip = pictures.filmstrip(domain, hand_trajectory(), tmp_path / "f.png", frames=3)
    assert png_size(strip) == (4 * DPI, round((0.6 * 3 + 1.0) * DPI))  # 3 frames, 2 slots
    samples = [Generated(tokens=[5, 6, 7], prompt=[7, 6, 5], reveal_step=[3, 1, 2]),
               Generated(tokens=[8], prompt=[8], reveal_step=[0])]
    grid = pictures.samples_figure(domain, samples, tmp_path / "g.png")
    assert png_size(grid)[1] == round((0.6 * 2 + 1.0) * DPI)
    drawing = DrawingDomain(ToyDomain.Options(size=4))
    tiled = pictures.filmstrip(drawing, hand_trajectory(), tmp_path / "ft.png", frames=3)
    assert png_size(tiled) == (3 * 2 * DPI, round((2 + 0.3) * DPI))
