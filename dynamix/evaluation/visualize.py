"""Ranked-list picture: each row a query, then its top-k gallery images.

Reading a few ranked lists is the fastest sanity check of a re-ID model (wrong camera
ids, a shifted gallery, a collapsed embedding all show at once). Borders: green = same pid
(a correct match), red = another pid, blue = the query. Same-pid-same-camera gallery
items are skipped, as in the evaluation protocol. Drawn with Pillow on a fixed pixel grid
(:class:`RankedListLayout`), so the layout is exact and testable; written atomically.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from dynamix.errors import DynamixError
from dynamix.evaluation.inputs import EvaluationInputError, check_ids
from dynamix.evaluation.topk import TopK, topk_from_distmat
from dynamix.io import atomic_path

log = logging.getLogger(__name__)

GREEN = (0, 170, 0)
RED = (220, 0, 0)
BLUE = (40, 90, 210)
EMPTY = (200, 200, 200)
BACKGROUND = (255, 255, 255)
TEXT = (20, 20, 20)


@dataclass(frozen=True)
class RankedListLayout:
    """Pixel grid of the picture: ``num_rows`` rows of 1 query tile + ``topk`` tiles.

    A tile is the image (``cell_w`` × ``cell_h``) framed by ``border`` px, with ``label_h``
    px of text below; ``gap`` px separate the query column from the gallery tiles.
    """

    topk: int
    num_rows: int
    cell_w: int = 64
    cell_h: int = 128
    border: int = 4
    label_h: int = 26
    pad: int = 6
    gap: int = 18
    margin: int = 8
    header_h: int = 18

    @property
    def tile_w(self) -> int:
        return self.cell_w + 2 * self.border

    @property
    def tile_h(self) -> int:
        return self.cell_h + 2 * self.border + self.label_h

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the PNG in pixels."""
        width = 2 * self.margin + (1 + self.topk) * self.tile_w + (self.topk - 1) * self.pad
        height = 2 * self.margin + self.header_h + self.num_rows * (self.tile_h + self.pad)
        return width + self.gap, height - self.pad

    def tile_origin(self, row: int, col: int) -> tuple[int, int]:
        """Top-left pixel of the framed image; col 0 = query, col j = j-th gallery match."""
        x = self.margin + col * self.tile_w
        if col > 0:
            x += self.gap + (col - 1) * self.pad
        y = self.margin + self.header_h + row * (self.tile_h + self.pad)
        return x, y


def _font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=10)
    except TypeError:  # Pillow < 10.1: bitmap font without a size
        return ImageFont.load_default()


def _load(path: str | os.PathLike[str], size: tuple[int, int]) -> Image.Image:
    try:
        with Image.open(path) as img:
            return img.convert("RGB").resize(size, Image.Resampling.BILINEAR)
    except (OSError, ValueError) as exc:
        raise DynamixError(f"{path}: cannot read image ({exc}); check the image paths") from exc


def _draw_tile(
    canvas: Image.Image,
    draw: ImageDraw.ImageDraw,
    layout: RankedListLayout,
    pos: tuple[int, int],
    image: Image.Image | None,
    colour: tuple[int, int, int],
    lines: Sequence[str],
    font: Any,
) -> None:
    x, y = pos
    b = layout.border
    draw.rectangle([x, y, x + layout.tile_w - 1, y + layout.cell_h + 2 * b - 1], fill=colour)
    if image is None:
        draw.rectangle([x + b, y + b, x + b + layout.cell_w - 1, y + b + layout.cell_h - 1], fill=EMPTY)
    else:
        canvas.paste(image, (x + b, y + b))
    ty = y + layout.cell_h + 2 * b + 1
    for i, line in enumerate(lines):
        draw.text((x + 1, ty + 12 * i), line, fill=TEXT, font=font)


def _ranked_lists(
    ranked: Any, rows: list[int], ids: tuple[np.ndarray, ...], topk: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """(len(rows), topk) gallery indices (-1 = none) and distances (None if not known).

    ranked: (Q, G) float distances, (Q, n) int ranked indices, or :class:`TopK`; only the
    given query ``rows`` are ranked. Same-pid-same-camera items are skipped.
    """
    q_pids, g_pids, q_camids, g_camids = ids
    num_q, num_g = len(q_pids), len(g_pids)
    sel = np.asarray(rows)
    if isinstance(ranked, TopK):
        ranked, dists = ranked.indices, ranked.distances
    else:
        ranked, dists = np.asarray(ranked), None
        if ranked.ndim == 2 and ranked.dtype.kind == "f":
            if ranked.shape != (num_q, num_g):
                raise EvaluationInputError(f"distmat must have shape ({num_q}, {num_g}), got {ranked.shape}")
            top = topk_from_distmat(
                ranked[sel],
                topk,
                q_pids=q_pids[sel],
                g_pids=g_pids,
                q_camids=q_camids[sel],
                g_camids=g_camids,
            )
            return top.indices, top.distances
    if ranked.ndim != 2 or ranked.shape[0] != num_q or ranked.dtype.kind not in "iu":
        raise EvaluationInputError(
            f"ranked indices must be integers of shape ({num_q}, n), got {ranked.dtype} {ranked.shape}"
        )
    if ranked.size and ranked.max() >= num_g:
        raise EvaluationInputError(f"ranked indices must be < {num_g} (the gallery size)")
    out = np.full((len(rows), topk), -1, dtype=np.int64)
    out_d = None if dists is None else np.full((len(rows), topk), np.inf)
    for r, q in enumerate(rows):
        idx = ranked[q].astype(np.int64)
        keep = idx >= 0
        keep[keep] = ~((g_pids[idx[keep]] == q_pids[q]) & (g_camids[idx[keep]] == q_camids[q]))
        kept = np.flatnonzero(keep)[:topk]
        out[r, : len(kept)] = idx[kept]
        if out_d is not None:
            out_d[r, : len(kept)] = dists[q, kept]
    return out, out_d


def plot_ranked_list(
    query_paths: Sequence[str | os.PathLike[str]],
    gallery_paths: Sequence[str | os.PathLike[str]],
    ranked_indices_or_distmat: Any,
    q_pids: Any,
    g_pids: Any,
    q_camids: Any,
    g_camids: Any,
    out_path: str | os.PathLike[str],
    topk: int = 10,
    num_queries: int = 8,
    *,
    query_indices: Sequence[int] | None = None,
    layout: RankedListLayout | None = None,
) -> Path:
    """Write a PNG grid of queries and their top-``topk`` gallery matches; return its path.

    ranked_indices_or_distmat: a (Q, G) float distance matrix (ranked like the metrics:
    distance, then gallery index), a (Q, n) int array of already ranked gallery indices
    (-1 = none), or a :class:`TopK`. Rows are ``query_indices`` or the first
    ``num_queries`` queries. Labels give pid, camera and, when known, the distance.
    """
    qp, gp, qc, gc = check_ids(
        q_pids,
        g_pids,
        q_camids,
        g_camids,
        len(query_paths),
        len(gallery_paths),
        "the image path lists",
    )
    rows = list(query_indices) if query_indices is not None else list(range(min(num_queries, len(qp))))
    bad = [q for q in rows if not 0 <= q < len(qp)]
    if bad or not rows or topk < 1:
        raise EvaluationInputError(f"need topk >= 1 and query indices in [0, {len(qp)}), got topk={topk}, rows={rows}")
    ranked, dists = _ranked_lists(ranked_indices_or_distmat, rows, (qp, gp, qc, gc), topk)
    layout = layout or RankedListLayout(topk=topk, num_rows=len(rows))
    if layout.topk != topk or layout.num_rows != len(rows):
        raise EvaluationInputError("layout.topk/num_rows do not match topk and the query rows")
    canvas = Image.new("RGB", layout.size, BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    font = _font()
    draw.text(
        (layout.margin, layout.margin // 2),
        f"query | top-{topk} (green: same id, red: other id)",
        fill=TEXT,
        font=font,
    )
    cell = (layout.cell_w, layout.cell_h)
    for r, q in enumerate(rows):
        _draw_tile(
            canvas,
            draw,
            layout,
            layout.tile_origin(r, 0),
            _load(query_paths[q], cell),
            BLUE,
            [f"q{q} id{qp[q]}", f"cam{qc[q]}"],
            font,
        )
        for j in range(topk):
            g = int(ranked[r, j])
            pos = layout.tile_origin(r, j + 1)
            if g < 0:
                _draw_tile(canvas, draw, layout, pos, None, EMPTY, [f"#{j + 1} none"], font)
                continue
            dist = "" if dists is None else f" d={dists[r, j]:.3f}"
            _draw_tile(
                canvas,
                draw,
                layout,
                pos,
                _load(gallery_paths[g], cell),
                GREEN if gp[g] == qp[q] else RED,
                [f"#{j + 1} id{gp[g]}", f"c{gc[g]}{dist}"],
                font,
            )
    with atomic_path(out_path) as tmp:
        canvas.save(tmp, format="PNG")
    log.info("wrote ranked list of %d queries to %s", len(rows), out_path)
    return Path(out_path)
