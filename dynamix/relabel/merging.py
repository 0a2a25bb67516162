"""Relabeling step (b): merge single-camera ids whose centroids are the same person.

A person gets several pseudo ids when a tracker breaks their track (or films them in
several videos). The caller (:meth:`OnlineRelabeler.end_window`) builds a kNN graph over
the single-camera centroids (faiss top-k, so O(M × k) edges, never M × M) and keeps the
edges it trusts; :func:`merge_components` merges each connected component
(``scipy.sparse.csgraph.connected_components``; optionally mutual edges only, which resists
chaining through one ambiguous centroid) into its smallest id. Keeping the smallest
existing id, instead of renumbering, leaves every other label and the bank's shape valid.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from dynamix.relabel.filtering import as_int64

log = logging.getLogger(__name__)


@dataclass
class MergeResult:
    mapping: np.ndarray  # (C,) int64: new id of every id (identity where unchanged)
    ids_merged: int  # ids folded into another id
    num_edges: int  # undirected edges of the similarity graph
    largest_group: int  # ids in the biggest component: watch it for over-merging


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
