"""Where the person sits in the crop, which way they face, and which background window.

These are planned up front as table columns (not drawn while rendering) so a plan row
fully describes its crop: tracklet frames can move smoothly, CUHK's labeled and detected
boxes can share one frame with different jitter, and junk crops are explicit.
"""

from __future__ import annotations

import numpy as np

NOMINAL_HEIGHT = 0.9  # person height as a fraction of the crop for a perfect detection


def quantise(x: np.ndarray) -> np.ndarray:
    """Round to 1e-4 and store as float32: the same plan on every CPU (see style.py)."""
    return np.round(np.asarray(x, dtype=np.float64), 4).astype(np.float32)


def boxes(noise: np.ndarray, shift_sd: np.ndarray, scale_sd: np.ndarray, mult: float = 1.0) -> dict[str, np.ndarray]:
    """Detector boxes from standard normals ``noise`` ``(n, 3)`` and per-row jitter sds ``(n,)``.

    Passing the same ``noise`` with a larger ``mult`` gives a worse box of the same frame.
    """
    height = NOMINAL_HEIGHT * np.exp(mult * scale_sd * noise[:, 0])
    top = (1.0 - height) / 2 + mult * shift_sd * noise[:, 1]
    cx = 0.5 + mult * shift_sd * noise[:, 2]
    return {"height": quantise(height), "top": quantise(top), "cx": quantise(cx)}


def poses(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    return {
        "view": rng.integers(4, size=n).astype(np.int8),
        "phase": quantise(rng.uniform(0, 2 * np.pi, size=n)),
        "lean": quantise(0.03 * rng.standard_normal(n)),
    }


def windows(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    return {"bg_x": quantise(rng.random(n)), "bg_y": quantise(rng.random(n))}


def junk_boxes(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Boxes of bad detections: a tiny person, half a person off-centre, or only the top."""
    kind = rng.integers(3, size=n)
    tiny = rng.uniform(0.25, 0.45, size=n)
    height = np.where(kind == 0, tiny, NOMINAL_HEIGHT * rng.uniform(0.9, 1.6, size=n))
    top = np.where(kind == 2, rng.uniform(0.45, 0.7, size=n), rng.uniform(0.0, 0.6, size=n))
    top = np.where(kind == 1, (1.0 - height) / 2, top)
    side = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    cx = np.where(kind == 1, 0.5 + side * rng.uniform(0.45, 0.6, size=n), rng.random(n))
    return {"height": quantise(height), "top": quantise(top), "cx": quantise(cx)}


def grouped_arange(counts: np.ndarray) -> np.ndarray:
    """``[0..c0-1, 0..c1-1, ...]`` for group sizes ``counts``: the rank inside each group."""
    counts = np.asarray(counts, dtype=np.int64)
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    return np.arange(int(counts.sum()), dtype=np.int64) - starts


def rank_in_groups(order: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Rank of each row inside its group, counting rows in ``order`` (groups contiguous in it)."""
    g = group[order]
    n = len(g)
    new = np.r_[True, g[1:] != g[:-1]] if n else np.zeros(0, dtype=bool)
    start = np.maximum.accumulate(np.where(new, np.arange(n), 0))
    ranks = np.empty(n, dtype=np.int64)
    ranks[order] = np.arange(n) - start
    return ranks
