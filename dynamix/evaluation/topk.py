"""Top-k gallery items per query, in the evaluation's tie order, for pictures and CLIs.

The ranked-list picture and the feature-extraction CLI need the first k gallery items of
each query, ordered exactly as the metrics order them (distance, then gallery index) and
with the same exclusion rule (same pid and same camera as the query). Each distance gets
the unique int64 key ``order code of d | column``, so ``torch.topk`` on the keys is exact
and deterministic even with tied distances.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from dynamix.evaluation.features import (
    check_feature_pair,
    chunk_rows,
    iter_distance_chunks,
    resolve_device,
)
from dynamix.evaluation.inputs import EvaluationInputError, check_distmat, check_ids, tensor_view
from dynamix.evaluation.metrics import query_blocks
from dynamix.evaluation.ranking import CODE_BITS, GalleryIndex, order_codes, same_pid_pairs

log = logging.getLogger(__name__)

EXCLUDED_KEY = torch.iinfo(torch.int64).max


@dataclass(frozen=True)
class TopK:
    """indices: (Q, k) int64 gallery indices, best first, -1 where fewer than k remain;
    distances: (Q, k) float64, +inf where the index is -1."""

    indices: np.ndarray
    distances: np.ndarray


class _Exclusion:
    """Finds each query's same-pid-same-camera gallery items (None = exclude nothing)."""

    def __init__(self, ids: tuple[np.ndarray, ...] | None, device: torch.device) -> None:
        self.q_pids = self.q_camids = self.index = None
        if ids is not None:
            qp, gp, qc, gc = ids
            self.index = GalleryIndex.build(gp, gc, device)
            self.q_pids = torch.from_numpy(qp).to(device)
            self.q_camids = torch.from_numpy(qc).to(device)

    def pairs(self, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        if self.index is None:
            return None
        rows, cols = same_pid_pairs(self.index, self.q_pids[start:stop])
        same_cam = self.index.camids[cols] == self.q_camids[start:stop][rows]
        return rows[same_cam], cols[same_cam]


def topk_block(
    dist: torch.Tensor, k: int, excluded: tuple[torch.Tensor, torch.Tensor] | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, G) distances → (B, k') indices and distances, k' = min(k, G); -1/inf if excluded."""
    num_g = dist.shape[1]
    col_bits = max(1, int(num_g - 1).bit_length())
    if CODE_BITS + col_bits > 63:
        raise EvaluationInputError(f"gallery of {num_g} items is too large for int64 keys")
    cols = torch.arange(num_g, device=dist.device)
    keys = (order_codes(dist.reshape(-1)).view(dist.shape) << col_bits) | cols
    if excluded is not None:
        keys[excluded] = EXCLUDED_KEY
    best = torch.topk(keys, min(k, num_g), dim=1, largest=False, sorted=True).values
    dropped = best == EXCLUDED_KEY
    idx = torch.where(dropped, -1, best & ((1 << col_bits) - 1))
    d = torch.gather(dist, 1, idx.clamp(min=0)).to(torch.float64)
    return idx, d.masked_fill_(dropped, float("inf"))


def _collect(chunks: Any, num_q: int, k: int, exclusion: _Exclusion) -> TopK:
    indices = np.full((num_q, k), -1, dtype=np.int64)
    distances = np.full((num_q, k), np.inf)
    for start, dist in chunks:
        stop = start + dist.shape[0]
        idx, d = topk_block(dist, k, exclusion.pairs(start, stop))
        indices[start:stop, : idx.shape[1]] = idx.cpu().numpy()
        distances[start:stop, : idx.shape[1]] = d.cpu().numpy()
    return TopK(indices, distances)


def _ids(
    ids: tuple[Any, Any, Any, Any], num_q: int, num_g: int, exclude: bool, source: str
) -> tuple[np.ndarray, ...] | None:
    if not exclude:
        return None
    if any(a is None for a in ids):
        raise EvaluationInputError("exclude_same_pid_camera needs q_pids, g_pids, q_camids and g_camids")
    return check_ids(*ids, num_q, num_g, source)


def _check_k(k: int) -> int:
    if isinstance(k, bool) or int(k) != k or k < 1:
        raise EvaluationInputError(f"k must be a positive integer, got {k!r}")
    return int(k)


def topk_from_distmat(
    distmat: Any,
    k: int = 10,
    *,
    q_pids: Any = None,
    g_pids: Any = None,
    q_camids: Any = None,
    g_camids: Any = None,
    exclude_same_pid_camera: bool = True,
    block_size: int | None = None,
) -> TopK:
    """Top-k gallery items of each row of a (Q, G) distance matrix (smaller = better).

    With ids given and ``exclude_same_pid_camera`` (default) the protocol's excluded
    items are skipped; pass ``exclude_same_pid_camera=False`` to rank the raw rows.
    """
    dist = check_distmat(distmat)
    num_q, num_g = dist.shape
    k = _check_k(k)
    has_ids = exclude_same_pid_camera and q_pids is not None
    ids = _ids((q_pids, g_pids, q_camids, g_camids), num_q, num_g, has_ids, "distmat")
    rows = chunk_rows(num_g, block_size)
    t = tensor_view(dist)
    chunks = ((start, t[start:stop]) for start, stop in query_blocks(num_q, rows))
    return _collect(chunks, num_q, k, _Exclusion(ids, torch.device("cpu")))


def topk_gallery(
    q_feats: Any,
    g_feats: Any,
    k: int = 10,
    *,
    q_pids: Any = None,
    g_pids: Any = None,
    q_camids: Any = None,
    g_camids: Any = None,
    exclude_same_pid_camera: bool = True,
    metric: str = "cosine",
    normalize: bool = True,
    block_size: int | None = None,
    device: str | torch.device | None = None,
) -> TopK:
    """Top-k gallery items per query from (Q, D) / (G, D) features, chunked like
    :func:`evaluate_features` (same distances, same tie order, same exclusion rule)."""
    q, g = check_feature_pair(q_feats, g_feats)
    k = _check_k(k)
    has_ids = exclude_same_pid_camera and q_pids is not None
    ids = _ids((q_pids, g_pids, q_camids, g_camids), len(q), len(g), has_ids, "features")
    dev = resolve_device(device, q_feats)
    rows = chunk_rows(len(g), block_size)
    with torch.inference_mode():
        chunks = iter_distance_chunks(q, g, metric=metric, normalize=normalize, rows=rows, device=dev)
        return _collect(chunks, len(q), k, _Exclusion(ids, dev))
