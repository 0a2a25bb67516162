"""Relabeling step (a): filter images that fit no centroid, move images to a better one.

Only images whose label is a single-camera (pseudo-labelled) id are considered; multi-camera
labels are ground truth and never change. For each such image, with its momentum feature
``f`` and the centroid bank ``C``:

- ``s_own = cos(f, C[label])``;
- ``s_best`` / ``best_id``: the most similar *other* single-camera centroid, from a faiss
  top-k search over the single-camera centroids (O(N × k) memory);
- **relabeled** to ``best_id`` if ``s_best ≥ tau_relabel`` and ``s_best ≥ s_own + margin``
  (clearly another person's track);
- otherwise **filtered** (label −1) if ``s_own`` is below the filter threshold: it fits
  its own id poorly and no other id passes the relabel test (junk crops, occlusions,
  identity switches with no home). If ``tau_relabel < tau_filter + margin``, an image
  can fit its own id poorly and another one well without the margin; it is filtered too,
  since keeping a label that fits badly is the worse error.

The filter threshold is ``tau_filter``, or, with ``filter_mad = z``, the higher of
``tau_filter`` and ``median(s_own) − z · MAD(s_own)`` over the images judged: a robust
outlier rule that does not depend on how concentrated the embedding space is at this stage
of training (early on, every cosine is near 1 and a fixed threshold filters nothing).
``reassign=False`` never moves an image to another id (only filtering), for encoders
whose nearest other centroid is more often wrong than right.

Images already at −1 stay filtered; pass the original labels to reconsider them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from dynamix.relabel.search import knn_search, normalized, take_rows

log = logging.getLogger(__name__)


@dataclass
class FilterResult:
    labels: np.ndarray  # (N,) int64 new labels, −1 = filtered
    considered: np.ndarray  # (N,) bool: single-camera images that were judged
    filtered: np.ndarray  # (N,) bool: filtered here
    relabeled: np.ndarray  # (N,) bool: moved to another id here
    s_own: np.ndarray  # (N,) fp32 similarity to the own centroid (NaN if not considered)
    s_best: np.ndarray  # (N,) fp32 best other similarity (NaN if not considered)
    filter_threshold: float = float("nan")  # the own-similarity threshold applied


def as_int64(x: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.int64)


def as_bool(x: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=bool)


def own_similarity(
    feats: np.ndarray,
    centroids: torch.Tensor | np.ndarray,
    own: np.ndarray,
    block: int = 1 << 16,
) -> np.ndarray:
    """(n,) cosine of each unit row of ``feats`` (n, D) with its own centroid ``own`` (n,).

    Centroids are gathered and normalised ``block`` rows at a time, so the (n, D) fp32
    copy of the own centroids (2.9 GiB at 1M × 768) never exists at once.
    """
    out = np.empty(len(own), dtype=np.float32)
    for start in range(0, len(own), block):
        rows = slice(start, start + block)
        mine = normalized(take_rows(centroids, own[rows]), inplace=True)  # (b, D)
        out[rows] = np.einsum("nd,nd->n", feats[rows], mine)
    return out


def filter_threshold(s_own: np.ndarray, tau_filter: float, filter_mad: float | None) -> float:
    """``tau_filter``, raised to ``median − filter_mad · MAD`` of ``s_own`` (n,) if set."""
    if filter_mad is None or len(s_own) == 0:
        return float(tau_filter)
    median = float(np.median(s_own))
    mad = float(np.median(np.abs(s_own - median)))
    return max(float(tau_filter), median - float(filter_mad) * mad)


def filter_and_relabel(
    features: torch.Tensor | np.ndarray,
    labels: torch.Tensor | np.ndarray,
    centroids: torch.Tensor | np.ndarray,
    single_camera: torch.Tensor | np.ndarray,
    *,
    tau_filter: float,
    tau_relabel: float,
    margin: float,
    topk: int = 8,
    candidate_mask: torch.Tensor | np.ndarray | None = None,
    use_gpu: bool = False,
    nlist: int = 0,
    filter_mad: float | None = None,
    reassign: bool = True,
) -> FilterResult:
    """Judge ``features`` (N, D) with ``labels`` (N,) against ``centroids`` (C, D).

    ``single_camera`` (C,) bool marks pseudo-labelled ids; ``candidate_mask`` (C,) bool
    (e.g. ``bank.initialized``) restricts both own ids and targets to ids with a centroid.
    """
    labels = as_int64(labels)
    eligible = as_bool(single_camera)
    if candidate_mask is not None:
        eligible = eligible & as_bool(candidate_mask)
    num = len(labels)
    considered = (labels >= 0) & eligible[labels.clip(min=0)]
    rows = np.flatnonzero(considered)
    cand_ids = np.flatnonzero(eligible)  # (M,) global ids in the index

    own = labels[rows]
    feats = normalized(take_rows(features, rows), inplace=True)  # (n, D), a fresh copy
    s_own = own_similarity(feats, centroids, own)  # (n,)

    # topk + 1: the own id may take one slot, at least `topk` others remain.
    base = take_rows(centroids, cand_ids)  # (M, D)
    sims, pos = knn_search(
        base, feats, topk + 1, use_gpu=use_gpu, nlist=nlist, overwrite_queries=True
    )  # feats is not used after this: normalised in place, no (n, D) copy
    hit_ids = np.where(pos >= 0, cand_ids[pos.clip(min=0)], -1)  # (n, k)
    sims = np.where((hit_ids == own[:, None]) | (hit_ids < 0), -np.inf, sims)
    if sims.shape[1] > 0:
        best = sims.argmax(1)
        s_best = sims[np.arange(len(rows)), best]
        best_id = hit_ids[np.arange(len(rows)), best]
    else:
        s_best, best_id = np.full(len(rows), -np.inf, np.float32), np.full(len(rows), -1)

    threshold = filter_threshold(s_own, tau_filter, filter_mad)
    move = (s_best >= tau_relabel) & (s_best >= s_own + margin) & (best_id >= 0)
    move &= reassign
    drop = ~move & (s_own < threshold)
    new = labels.copy()
    new[rows[move]] = best_id[move]
    new[rows[drop]] = -1

    result = FilterResult(
        labels=new,
        considered=considered,
        filtered=np.zeros(num, bool),
        relabeled=np.zeros(num, bool),
        s_own=np.full(num, np.nan, np.float32),
        s_best=np.full(num, np.nan, np.float32),
        filter_threshold=threshold,
    )
    result.filtered[rows[drop]] = True
    result.relabeled[rows[move]] = True
    result.s_own[rows] = s_own
    result.s_best[rows] = s_best
    log.info(
        "relabel (a): %d images judged, %d filtered (own similarity < %.3f), %d relabeled",
        len(rows),
        int(drop.sum()),
        threshold,
        int(move.sum()),
    )
    return result
