"""Whether relabeling helped, measured against ground truth (reporting only).

The synthetic world knows each image's true person, so there we measure label quality over
the images kept for training:

- **purity**: fraction of kept images whose label's majority true id is their own true id.
  Junk images (true id −1) never count as pure, so keeping junk lowers purity and
  filtering it does not;
- **fragmentation**: mean number of distinct labels per true id (1 = no person split);
- **ARI**: adjusted Rand index between labels and true ids (each junk image its own
  singleton), 1 for a perfect relabeling up to renaming.

Filtered images are out of these numbers, so read them beside ``images_filtered``.
"""

from __future__ import annotations

import numpy as np


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
