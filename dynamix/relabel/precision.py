"""Was each relabeling action right? Precision against ground truth, for reporting only.

The synthetic world knows the true person of every image (−1 = junk). Decisions never read
it; these functions score them afterwards, so an ablation can say *why* a module pays or
not. A label's person is its **majority true id**: the commonest true person among its
images (junk left out). An action is right when:

- **filter**: the dropped image was mislabelled: junk, or another person than its label's;
- **reassign**: the moved image is the person of the label it moved to;
- **merge**: an edge id → representative joins two labels of one person.

Each precision is the share of right actions, NaN when there was no action to score.
"""

from __future__ import annotations

import numpy as np


def majority_true_id(labels: np.ndarray, true_ids: np.ndarray, num_ids: int) -> np.ndarray:
    """(num_ids,) int64 commonest true person of each label; −1 where it has no real image.

    ``labels`` (N,) with −1 = filtered (left out), ``true_ids`` (N,) with −1 = junk (left
    out). Ties go to the smallest true id, so the result is deterministic. O(N log N).
    """
    labels, true_ids = np.asarray(labels, np.int64), np.asarray(true_ids, np.int64)
    out = np.full(num_ids, -1, dtype=np.int64)
    keep = (labels >= 0) & (true_ids >= 0)
    if not keep.any():
        return out
    span = int(true_ids[keep].max()) + 1
    key, counts = np.unique(labels[keep] * span + true_ids[keep], return_counts=True)
    pair_label, pair_person = key // span, key % span
    order = np.lexsort((pair_person, -counts, pair_label))  # by label, most images first, then smallest person
    lab, person = pair_label[order], pair_person[order]
    first = np.ones(len(lab), dtype=bool)
    first[1:] = lab[1:] != lab[:-1]
    out[lab[first]] = person[first]
    return out


def share(right: np.ndarray) -> float:
    """Mean of a bool array, NaN if it is empty (nothing to measure)."""
    return float(np.mean(right)) if len(right) else float("nan")


def filter_precision(old_labels: np.ndarray, true_ids: np.ndarray, majority: np.ndarray) -> float:
    """Share of filtered images that were mislabelled: junk, or not their label's person.

    ``old_labels`` (F,) the label each filtered image had, ``true_ids`` (F,) its person,
    ``majority`` (C,) from :func:`majority_true_id` at decision time.
    """
    old_labels, true_ids = np.asarray(old_labels, np.int64), np.asarray(true_ids, np.int64)
    return share((true_ids < 0) | (true_ids != majority[old_labels]))


def reassign_precision(new_labels: np.ndarray, true_ids: np.ndarray, majority: np.ndarray) -> float:
    """Share of moved images whose person is the majority person of the label they moved to."""
    new_labels, true_ids = np.asarray(new_labels, np.int64), np.asarray(true_ids, np.int64)
    return share((true_ids >= 0) & (true_ids == majority[new_labels]))


def merge_precision(mapping: np.ndarray, majority: np.ndarray) -> float:
    """Share of merge edges id → representative (``mapping`` (C,)) joining one person.

    An id whose images are all junk (majority −1) joins nobody correctly.
    """
    mapping = np.asarray(mapping, np.int64)
    moved = np.flatnonzero(mapping != np.arange(len(mapping)))
    mine, theirs = majority[moved], majority[mapping[moved]]
    return share((mine >= 0) & (mine == theirs))
