"""The Relabeling Module for single-camera (pseudo-labelled) identities.

(a) :func:`filter_and_relabel` removes images that fit no centroid and moves images to a
clearly better one; (b) :func:`merge_pids` merges ids whose centroids form a connected
kNN graph; :func:`relabel_round` runs both, updates the centroid bank and reports
:class:`RelabelStats`. All neighbour search is faiss top-k: nothing quadratic.
"""

from dynamix.relabel.filtering import FilterResult, filter_and_relabel
from dynamix.relabel.merging import MergeResult, apply_mapping, merge_pids
from dynamix.relabel.round import RoundResult, relabel_round
from dynamix.relabel.search import faiss_index, knn_search
from dynamix.relabel.stats import RelabelStats, label_quality, similarity_histogram

__all__ = [
    "FilterResult",
    "MergeResult",
    "RelabelStats",
    "RoundResult",
    "apply_mapping",
    "faiss_index",
    "filter_and_relabel",
    "knn_search",
    "label_quality",
    "merge_pids",
    "relabel_round",
    "similarity_histogram",
]
