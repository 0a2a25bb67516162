"""Relabeling step (b): merge single-camera ids whose centroids are the same person.

A person filmed in several videos gets one pseudo-id per video. We build a kNN graph over
the single-camera centroids (faiss top-k, so O(M × k) edges, never M × M), keep edges with
cosine ≥ ``tau_merge`` (optionally only mutual neighbours, which resists chaining through
one ambiguous centroid), and merge each connected component
(``scipy.sparse.csgraph.connected_components``) into its smallest id. Keeping the smallest
existing id, instead of renumbering, leaves every other label and the bank's shape valid.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from dynamix.relabel.filtering import as_bool, as_int64
from dynamix.relabel.search import knn_search, take_rows

log = logging.getLogger(__name__)


@dataclass
class MergeResult:
    mapping: np.ndarray  # (C,) int64: new id of every id (identity where unchanged)
    ids_merged: int  # ids folded into another id
    num_edges: int  # undirected edges of the similarity graph
    largest_group: int  # ids in the biggest component: watch it for over-merging


def merge_pids(
    centroids: torch.Tensor | np.ndarray,
    single_camera: torch.Tensor | np.ndarray,
    *,
    tau_merge: float,
    topk: int = 8,
    mutual: bool = False,
    candidate_mask: torch.Tensor | np.ndarray | None = None,
    use_gpu: bool = False,
    nlist: int = 0,
) -> MergeResult:
    """Id mapping from the kNN graph over single-camera ``centroids`` (C, D).

    ``single_camera`` (C,) bool; ``candidate_mask`` (C,) bool limits the graph to ids with
    a centroid (e.g. ``bank.initialized``). Multi-camera ids always map to themselves.
    """
    eligible = as_bool(single_camera)
    if candidate_mask is not None:
        eligible = eligible & as_bool(candidate_mask)
    ids = np.flatnonzero(eligible)  # (M,) ascending
    mapping = np.arange(len(eligible), dtype=np.int64)
    m = len(ids)
    if m < 2:
        return MergeResult(mapping, 0, 0, int(m))
    vectors = take_rows(centroids, ids)
    sims, nbr = knn_search(vectors, vectors, topk + 1, use_gpu=use_gpu, nlist=nlist)  # (M, k)
    rows = np.repeat(np.arange(m), nbr.shape[1])
    cols = nbr.ravel()
    keep = (cols >= 0) & (cols != rows) & (sims.ravel() >= tau_merge)
    result = merge_components(len(eligible), ids, rows[keep], cols[keep], mutual=mutual)
    log.info(
        "relabel (b): %d ids, %d edges ≥ %.3f, %d merged, largest group %d",
        m,
        result.num_edges,
        tau_merge,
        result.ids_merged,
        result.largest_group,
    )
    return result


def merge_components(
    num_ids: int, ids: np.ndarray, rows: np.ndarray, cols: np.ndarray, *, mutual: bool = False
) -> MergeResult:
    """Merge the connected components of a graph over ``ids`` (M,) ascending global ids.

    ``rows``/``cols`` (E,) are directed edges as positions into ``ids`` (a kNN list:
    ``row`` has ``col`` among its neighbours); ``mutual`` keeps an edge only if both
    directions exist. Each component maps to its smallest id, so every other label and
    the bank's shape stay valid. Returns the (``num_ids``,) mapping, identity elsewhere.
    """
    m = len(ids)
    mapping = np.arange(num_ids, dtype=np.int64)
    if m < 2 or len(rows) == 0:
        return MergeResult(mapping, 0, 0, int(m > 0))
    graph = coo_matrix((np.ones(len(rows), np.int8), (rows, cols)), (m, m)).tocsr()
    graph.data[:] = 1  # duplicate edges summed by tocsr
    graph = graph.multiply(graph.T) if mutual else graph.maximum(graph.T)  # symmetric
    graph.eliminate_zeros()
    num_edges = int(graph.nnz // 2)
    num_groups, component = connected_components(graph, directed=False)
    _, first = np.unique(component, return_index=True)  # smallest local index per group
    mapping[ids] = ids[first[component]]
    largest = int(np.bincount(component).max())
    return MergeResult(mapping, int(m - num_groups), num_edges, largest)


def apply_mapping(labels: torch.Tensor | np.ndarray, mapping: torch.Tensor | np.ndarray) -> np.ndarray:
    """``mapping[labels]`` with −1 (filtered) kept as −1; (N,) int64."""
    labels, mapping = as_int64(labels), as_int64(mapping)
    return np.where(labels >= 0, mapping[labels.clip(min=0)], -1)
