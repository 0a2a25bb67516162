"""The Relabeling Module for single-camera (pseudo-labelled) identities.

(a) :func:`filter_and_relabel` removes images that fit no centroid and moves images to a
clearly better one; (b) :func:`merge_pids` merges ids whose centroids form a connected
kNN graph; :func:`relabel_round` runs both, updates the centroid bank and reports
:class:`RelabelStats`. :class:`OnlineRelabeler` does the same on the fly: (a) per training
step on the batch's momentum features, (b) per window from the bank alone, with each
action's precision against ground truth (:mod:`dynamix.relabel.precision`) for reporting.
All neighbour search is faiss top-k: nothing quadratic.
"""

from dynamix.relabel.filtering import FilterResult, filter_and_relabel
from dynamix.relabel.merging import MergeResult, apply_mapping, merge_components, merge_pids
from dynamix.relabel.online import OnlineRelabeler, WindowResult
from dynamix.relabel.precision import filter_precision, majority_true_id, merge_precision, reassign_precision
from dynamix.relabel.round import RoundResult, relabel_round
from dynamix.relabel.search import faiss_index, knn_search
from dynamix.relabel.stats import RelabelStats, label_quality, similarity_histogram

__all__ = [
    "FilterResult",
    "MergeResult",
    "OnlineRelabeler",
    "RelabelStats",
    "RoundResult",
    "WindowResult",
    "apply_mapping",
    "faiss_index",
    "filter_and_relabel",
    "filter_precision",
    "knn_search",
    "label_quality",
    "majority_true_id",
    "merge_components",
    "merge_pids",
    "merge_precision",
    "reassign_precision",
    "relabel_round",
    "similarity_histogram",
]
