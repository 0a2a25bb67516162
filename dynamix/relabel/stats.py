"""What one relabeling round did, and — with ground truth — whether it helped.

Counts and similarity histograms are always available; the synthetic world also knows each
image's true person, so there we measure label quality over the images kept for training:

- **purity**: fraction of kept images whose label's majority true id is their own true id.
  Junk images (true id −1) never count as pure, so keeping junk lowers purity and
  filtering it does not;
- **fragmentation**: mean number of distinct labels per true id (1 = no person split);
- **ARI**: adjusted Rand index between labels and true ids (each junk image its own
  singleton), 1 for a perfect relabeling up to renaming.

Filtered images are out of these numbers, so read them beside ``images_filtered``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np

HIST_BINS = 20


def similarity_histogram(values: np.ndarray, bins: int = HIST_BINS) -> np.ndarray:
    """Counts (bins,) of the finite ``values`` in fixed bins over [−1, 1]."""
    values = np.asarray(values, dtype=np.float64)
    values = np.clip(values[np.isfinite(values)], -1.0, 1.0)
    return np.histogram(values, bins=bins, range=(-1.0, 1.0))[0]


def label_quality(labels: np.ndarray, true_ids: np.ndarray) -> dict[str, float]:
    """Purity, fragmentation and ARI of ``labels`` (N,) against ``true_ids`` (N,).

    Images with label −1 (filtered) are left out; O(N log N) through ``np.unique``.
    """
    from sklearn.metrics import adjusted_rand_score

    labels, true_ids = np.asarray(labels, np.int64), np.asarray(true_ids, np.int64)
    kept = labels >= 0
    lab, true = labels[kept], true_ids[kept]
    if len(lab) == 0:
        return {"purity": float("nan"), "fragmentation": float("nan"), "ari": float("nan")}
    real = true >= 0
    pairs, counts = np.unique(np.stack([lab[real], true[real]]), axis=1, return_counts=True)
    _, label_index = np.unique(pairs[0], return_inverse=True)
    majority = np.zeros(label_index.max() + 1 if len(label_index) else 0, np.int64)
    np.maximum.at(majority, label_index, counts)  # images of each label's majority person
    purity = majority.sum() / len(lab)
    fragmentation = np.unique(pairs[1], return_counts=True)[1].mean() if real.any() else 1.0
    singletons = true.copy()
    singletons[~real] = -1 - np.arange(int((~real).sum()))  # each junk image alone
    return {
        "purity": float(purity),
        "fragmentation": float(fragmentation),
        "ari": float(adjusted_rand_score(singletons, lab)),
    }


@dataclass
class RelabelStats:
    """One round's record; :meth:`as_dict` gives the flat view for logging."""

    images_judged: int
    images_filtered: int
    images_relabeled: int
    ids_merged: int
    ids_remaining: int
    largest_merge_group: int
    own_sim_hist: np.ndarray  # (HIST_BINS,) counts of s_own over [−1, 1]
    best_other_sim_hist: np.ndarray  # (HIST_BINS,) counts of s_best over [−1, 1]
    filter_threshold: float | None = None  # own-similarity threshold the round applied
    purity_before: float | None = None
    purity: float | None = None
    fragmentation_before: float | None = None
    fragmentation: float | None = None
    ari_before: float | None = None
    ari: float | None = None

    @property
    def hist_edges(self) -> np.ndarray:
        return np.linspace(-1.0, 1.0, len(self.own_sim_hist) + 1)

    def as_dict(self) -> dict[str, Any]:
        """Scalars as numbers, histograms as lists; ground-truth fields only when measured."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            out[f.name] = value.tolist() if isinstance(value, np.ndarray) else value
        return out
