"""Pick the single-camera candidates that look most like the batch's multi-camera ids.

This is what makes DynaMix batches *matched*: single-camera people who resemble the
multi-camera people of the same batch are hard negatives for them, so the batch teaches
more than a random mix. Similarity is cosine between centroids (momentum features,
stable while the online encoder moves).
"""

from __future__ import annotations

import numpy as np


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """Unit rows in fp32; zero rows (ids without a centroid yet) stay zero."""
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)


def match_nearest(candidates: np.ndarray, anchors: np.ndarray, n: int) -> np.ndarray:
    """Positions (n,) of the candidates nearest to the anchors, taken round-robin.

    ``candidates`` (W, D) and ``anchors`` (P, D) are centroids. Each anchor in turn takes
    its most similar candidate not yet taken, so the hard negatives are shared out over
    the batch's multi-camera ids instead of all crowding around the one with the most
    look-alikes. Ties keep queue order (stable sort), so candidates without a centroid
    (zero rows, similarity 0) are taken in arrival order. Cost O(W·P·log W).
    """
    w = len(candidates)
    if n > w:
        raise ValueError(f"cannot take {n} of {w} candidates")
    if len(anchors) == 0 or n == 0:
        return np.arange(n)
    sim = normalize_rows(candidates) @ normalize_rows(anchors).T  # (W, P) cosine
    ranked = np.argsort(-sim, axis=0, kind="stable")  # (W, P) candidates per anchor
    taken = np.zeros(w, dtype=bool)
    cursor = np.zeros(len(anchors), dtype=np.int64)
    out = np.empty(n, dtype=np.int64)
    for i in range(n):
        a = i % len(anchors)
        while taken[ranked[cursor[a], a]]:
            cursor[a] += 1
        out[i] = ranked[cursor[a], a]
        taken[out[i]] = True
    return out
