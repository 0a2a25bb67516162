"""The Relabeling Module for single-camera (pseudo-labelled) identities.

Training uses :class:`OnlineRelabeler`, on the fly: (a) filter and reassign per training
step, on the batch's momentum features against the centroid bank; (b) merge ids per window,
from the bank alone (:func:`merge_components` over a faiss kNN graph), with each action's
precision against ground truth (:mod:`dynamix.relabel.precision`) for reporting. Nothing
makes a pass over the single-camera set. :func:`filter_and_relabel` applies step (a) to a
whole feature set at once, for post-hoc diagnostics (``scripts/relabel_diagnostics.py``).
All neighbour search is faiss top-k: nothing quadratic.
"""

from dynamix.relabel.filtering import FilterResult, filter_and_relabel
from dynamix.relabel.merging import MergeResult, apply_mapping, merge_components
from dynamix.relabel.online import OnlineRelabeler, WindowResult
from dynamix.relabel.precision import filter_precision, majority_true_id, merge_precision, reassign_precision
from dynamix.relabel.search import faiss_index, knn_search
from dynamix.relabel.stats import label_quality

__all__ = [
    "FilterResult",
    "MergeResult",
    "OnlineRelabeler",
    "WindowResult",
    "apply_mapping",
    "faiss_index",
    "filter_and_relabel",
    "filter_precision",
    "knn_search",
    "label_quality",
    "majority_true_id",
    "merge_components",
    "merge_precision",
    "reassign_precision",
]
