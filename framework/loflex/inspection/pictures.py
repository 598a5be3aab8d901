"""Pictures of sequences and trajectories with matplotlib (Agg, no display needed).

Every function writes one image file (PNG or SVG by suffix) of a predictable size,
``figsize * dpi`` pixels, and returns its path. A domain may draw its own objects
(:meth:`loflex.Domain.draw`); :func:`draw_values` falls back to a token strip.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import matplotlib as mpl
import numpy as np
from matplotlib.figure import Figure

from loflex.contracts import DrawableDomain, supports
from loflex.contracts.vocab import SPECIAL_TOKENS
from loflex.inspection.trajectory import SampleTrajectory

DPI = 100
STATE_COLOURS = ("white", "#c8c8c8", "#2c5d8a")  # absent, masked, revealed
MAX_LABELLED = 80  # more rows or boxes than this are drawn without token text
CAPTION = 0.3  # inches above each tiled image for its caption


def _save(fig: Figure, path: str | Path, dpi: int) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path


def _boxes(ax, pieces: Sequence[str], colours: Sequence, y: float = 0.0) -> None:
    """Draw one row of unit boxes at height ``y``, labelled with ``pieces``."""
    label = len(pieces) <= MAX_LABELLED
    for x, (piece, colour) in enumerate(zip(pieces, colours)):
        ax.add_patch(mpl.patches.Rectangle((x, y), 0.95, 0.9, facecolor=colour, edgecolor="black",
                                           linewidth=0.5))
        if label:
            dark = sum(mpl.colors.to_rgb(colour)) < 1.5
            ax.text(x + 0.475, y + 0.45, piece, ha="center", va="center", fontsize=7,
                    color="white" if dark else "black")


def _norm(values: Sequence[float], vmin: float | None, vmax: float | None) -> mpl.colors.Normalize:
    finite = [v for v in values if np.isfinite(v)]
    lo = min(finite, default=0.0) if vmin is None else vmin
    hi = max(finite, default=1.0) if vmax is None else vmax
    return mpl.colors.Normalize(lo, hi if hi > lo else lo + 1.0)


def token_strip(pieces: Sequence[str], values: Sequence[float], path: str | Path, *,
                title: str = "", label: str = "", cmap: str = "viridis",
                vmin: float | None = None, vmax: float | None = None, dpi: int = DPI) -> Path:
    """Draw tokens as a row of boxes coloured by one value each (e.g. insertion time).

    Args:
        pieces: token texts, n of them.
        values: one number per token.
        path: the image file.
        title: caption; label: colour-bar label.
        cmap: matplotlib colormap; vmin, vmax: colour range (default: the values' range).

    Returns:
        ``path``; the image is ``max(4, 0.45 n + 1.5)`` x 1.8 inches.
    """
    assert len(pieces) == len(values), "token_strip needs one value per token"
    mappable = mpl.cm.ScalarMappable(norm=_norm(values, vmin, vmax), cmap=cmap)
    fig = Figure(figsize=(max(4.0, 0.45 * len(pieces) + 1.5), 1.8))
    ax = fig.add_axes((0.03, 0.12, 0.8, 0.62))
    _boxes(ax, pieces, [mappable.to_rgba(v) for v in values])
    ax.set_xlim(-0.1, max(len(pieces), 1))
    ax.set_ylim(-0.1, 1.0)
    ax.set_axis_off()
    fig.colorbar(mappable, cax=fig.add_axes((0.86, 0.15, 0.02, 0.6)), label=label)
    if title:
        fig.suptitle(title, fontsize=9)
    return _save(fig, path, dpi)


def state_matrix(trajectory: SampleTrajectory, slots: Sequence[int]) -> np.ndarray:
    """Return (len(slots), states) ints: 0 absent, 1 masked, 2 revealed, per slot and state."""
    states = np.arange(trajectory.num_states)[None, :]
    insert = np.array([trajectory.insert_step[i] for i in slots])[:, None]
    reveal = np.array([trajectory.reveal_step[i] for i in slots])[:, None]
    present = insert < states  # a slot inserted at step k exists from state k + 1
    shown = present & (reveal < states)  # never-masked slots have reveal -1
    return present.astype(int) + shown.astype(int)


def trajectory_heatmap(trajectory: SampleTrajectory, path: str | Path, *, title: str = "",
                       include_fixed: bool = False, dpi: int = DPI) -> Path:
    """Draw a token-by-step picture of a trajectory: absent, masked or revealed.

    Rows are the final slots (the generated ones, or all with ``include_fixed``) in
    sequence order, labelled by their token; columns are the states, 0 to steps.

    Returns:
        ``path``; the image is ``7 x clip(0.2 rows + 1.2, 2.5, 20)`` inches.
    """
    slots = (list(range(len(trajectory.tokens))) if include_fixed
             else trajectory.generated_slots())
    matrix = state_matrix(trajectory, slots)
    fig = Figure(figsize=(7.0, float(np.clip(0.2 * len(slots) + 1.2, 2.5, 20.0))),
                 layout="constrained")
    ax = fig.subplots()
    cmap = mpl.colors.ListedColormap(STATE_COLOURS)
    image = ax.imshow(matrix if len(slots) else np.zeros((1, trajectory.num_states)), cmap=cmap,
                      vmin=-0.5, vmax=2.5, aspect="auto", interpolation="nearest")
    if 0 < len(slots) <= MAX_LABELLED:
        ax.set_yticks(range(len(slots)), [trajectory.pieces[i] for i in slots], fontsize=7)
    ax.xaxis.set_major_locator(mpl.ticker.MaxNLocator(integer=True))
    ax.set_xlabel("state (0 = start; state k + 1 follows sampler step k)", fontsize=8)
    ax.set_ylabel("final token", fontsize=8)
    bar = fig.colorbar(image, ax=ax, ticks=[0, 1, 2], fraction=0.05)
    bar.ax.set_yticklabels(["absent", "masked", "revealed"], fontsize=7)
    ax.set_title(title or trajectory.text[:80], fontsize=9)
    return _save(fig, path, dpi)


def draw_values(domain, tokens: Sequence[int], values: Sequence[float], path: str | Path, *,
                prompt: Sequence[int] = (), title: str = "", label: str = "",
                vmin: float | None = None, vmax: float | None = None) -> Path:
    """Draw a sequence with one value per token through the domain, else as a token strip."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if domain is not None and domain.draw(list(tokens), list(values), path, prompt=list(prompt),
                                          title=title):
        return path
    pieces = _pieces(domain, tokens)
    return token_strip(pieces, values, path, title=title, label=label, vmin=vmin, vmax=vmax)


def _pieces(domain, tokens: Sequence[int]) -> list[str]:
    if domain is None:
        return [str(t) for t in tokens]
    return domain.vocab.decode(tokens, skip_special=False)


def tile_images(images: Sequence[str | Path], labels: Sequence[str], path: str | Path, *,
                columns: int = 3, dpi: int = DPI) -> Path:
    """Place PNG images in a grid with a caption each, at their own resolution.

    Returns:
        ``path``; every cell is as large as the largest image (in pixels at ``dpi``) plus
        0.3 inch for its caption, with ``min(columns, len(images))`` cells per row.
    """
    from matplotlib.image import imread

    pixels = [imread(str(image)) for image in images]
    cell_w = max((p.shape[1] for p in pixels), default=dpi) / dpi
    cell_h = max((p.shape[0] for p in pixels), default=dpi) / dpi + CAPTION
    cols = max(1, min(columns, len(images)))
    rows = max(1, -(-len(images) // cols))
    fig = Figure(figsize=(cols * cell_w, rows * cell_h))
    for k, (image, label) in enumerate(zip(pixels, labels)):
        r, c = divmod(k, cols)
        ax = fig.add_axes((c / cols, 1 - (r + 1) / rows, 1 / cols, (cell_h - CAPTION) / cell_h / rows))
        ax.imshow(image, interpolation="nearest")
        ax.set_axis_off()
        ax.set_title(label, fontsize=9)
    return _save(fig, path, dpi)


def side_by_side(domain, tokens: Sequence[int], values: dict[str, Sequence[float]],
                 path: str | Path, *, prompt: Sequence[int] = (), label: str = "") -> Path:
    """Draw one sequence several times, coloured by each entry of ``values`` (one panel each).

    All panels share one colour range, so orders can be compared by eye.
    """
    everything = [v for vals in values.values() for v in vals]
    lo, hi = min(everything, default=0.0), max(everything, default=1.0)
    if domain is None or not _draws(domain):
        rows = {name: list(vals) for name, vals in values.items()}
        return value_rows(_pieces(domain, tokens), rows, path, label=label, vmin=lo, vmax=hi)
    with tempfile.TemporaryDirectory() as tmp:
        images = [draw_values(domain, tokens, vals, Path(tmp) / f"{i}.png", prompt=prompt,
                              label=label, vmin=lo, vmax=hi)
                  for i, (name, vals) in enumerate(values.items())]
        return tile_images(images, list(values), path, columns=len(images))


def _draws(domain) -> bool:
    return supports(domain, DrawableDomain)


def value_rows(pieces: Sequence[str], rows: dict[str, Sequence[float]], path: str | Path, *,
               label: str = "", vmin: float | None = None, vmax: float | None = None,
               dpi: int = DPI) -> Path:
    """Draw the same tokens once per named row, coloured by that row's values."""
    everything = [v for vals in rows.values() for v in vals]
    mappable = mpl.cm.ScalarMappable(norm=_norm(everything, vmin, vmax), cmap="viridis")
    boxes = {name: [(piece, mappable.to_rgba(v)) for piece, v in zip(pieces, vals)]
             for name, vals in rows.items()}
    return _rows_figure(boxes, path, mappable=mappable, label=label, dpi=dpi)


def _rows_figure(rows: dict[str, list[tuple[str, object]]], path: str | Path, *, title: str = "",
                 mappable=None, label: str = "", dpi: int = DPI) -> Path:
    """Draw one labelled row of (piece, colour) boxes per entry of ``rows``.

    The image is ``max(4, 0.45 width + 3) x (0.6 rows + 1)`` inches, ``width`` the longest row.
    """
    width = max((len(row) for row in rows.values()), default=1)
    fig = Figure(figsize=(max(4.0, 0.45 * width + 3.0), 0.6 * len(rows) + 1.0))
    ax = fig.add_axes((0.18, 0.06, 0.68, 0.82))
    for r, (name, row) in enumerate(rows.items()):
        y = len(rows) - 1 - r
        _boxes(ax, [piece for piece, _ in row], [colour for _, colour in row], y=y)
        ax.text(-0.3, y + 0.45, name, ha="right", va="center", fontsize=8)
    ax.set_xlim(-0.1, max(width, 1))
    ax.set_ylim(-0.1, max(len(rows), 1))
    ax.set_axis_off()
    if mappable is not None:
        fig.colorbar(mappable, cax=fig.add_axes((0.89, 0.15, 0.02, 0.7)), label=label)
    if title:
        ax.set_title(title[:80], fontsize=9)
    return _save(fig, path, dpi)


def filmstrip(domain, trajectory: SampleTrajectory, path: str | Path, *, frames: int = 6,
              dpi: int = DPI) -> Path:
    """Draw a few states of a trajectory, start to end.

    A domain that draws its own objects draws each frame from the tokens revealed so
    far (a molecule domain decodes partial fragments as far as it can); otherwise each
    frame is a row of boxes, masks grey and revealed tokens coloured by reveal step.
    """
    picks = sorted({int(s) for s in np.linspace(1, trajectory.num_states - 1, frames).round()})
    slots = trajectory.generated_slots()
    head = [trajectory.tokens[i] for i in range(len(trajectory.tokens))
            if trajectory.insert_step[i] < 0 and trajectory.tokens[i] >= len(SPECIAL_TOKENS)]
    if domain is not None and _draws(domain):
        with tempfile.TemporaryDirectory() as tmp:
            images = []
            for s in picks:
                shown = [i for i in slots if 0 <= trajectory.reveal_step[i] < s]
                images.append(draw_values(domain, [trajectory.tokens[i] for i in shown],
                                          [float(trajectory.reveal_step[i]) for i in shown],
                                          Path(tmp) / f"{s}.png", prompt=head))
            labels = [f"t = {trajectory.t[s]:.2f}" for s in picks]
            return tile_images(images, labels, path, columns=3)
    rows = {f"t = {trajectory.t[s]:.2f}": [(trajectory.pieces[i], STATE_COLOURS[2])
                          if trajectory.reveal_step[i] < s else ("", STATE_COLOURS[1])
                          for i in slots if trajectory.insert_step[i] < s] for s in picks}
    return _rows_figure(rows, path, title=trajectory.text, dpi=dpi)


def samples_figure(domain, samples: Sequence, path: str | Path, *, count: int = 12,
                   dpi: int = DPI) -> Path:
    """Draw up to ``count`` generated samples, tokens coloured by the step that revealed them.

    Domains that draw their own objects get a grid of their pictures; others one row
    of token boxes per sample.
    """
    chosen = list(samples)[:count]
    steps = [list(s.reveal_step or [0] * len(s.tokens)) for s in chosen]
    if domain is not None and _draws(domain):
        with tempfile.TemporaryDirectory() as tmp:
            images = [draw_values(domain, s.tokens, v, Path(tmp) / f"{i}.png", prompt=s.prompt,
                                  label="reveal step")
                      for i, (s, v) in enumerate(zip(chosen, steps))]
            return tile_images(images, [f"sample {i}" for i in range(len(images))], path,
                               columns=3, dpi=dpi)
    mappable = mpl.cm.ScalarMappable(norm=_norm([v for r in steps for v in r], None, None),
                                     cmap="viridis")
    rows = {f"sample {i}": [(p, mappable.to_rgba(v)) for p, v in zip(_pieces(domain, s.tokens), r)]
            for i, (s, r) in enumerate(zip(chosen, steps))}
    return _rows_figure(rows, path, mappable=mappable, label="reveal step", dpi=dpi)
