"""One Relabeling Module round: (a) filter & relabel images, then (b) merge PIDs.

The trainer calls :func:`relabel_round` every R iterations after a warm-up, with the
momentum features recently seen for single-camera images. The round changes the labels it
returns and the centroid bank (merged rows, count-weighted); the trainer then hands the new
labels to its dataset and sampler.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from dynamix.centroids import CentroidBank
from dynamix.relabel.filtering import as_bool, as_int64, filter_and_relabel
from dynamix.relabel.merging import apply_mapping, merge_pids
from dynamix.relabel.stats import HIST_BINS, RelabelStats, label_quality, similarity_histogram

log = logging.getLogger(__name__)


@dataclass
class RoundResult:
    labels: np.ndarray  # (N,) int64 labels after the round, −1 = filtered
    mapping: np.ndarray  # (C,) int64 id mapping applied by the merge (identity if none)
    stats: RelabelStats


def relabel_round(
    features: torch.Tensor | np.ndarray,
    labels: torch.Tensor | np.ndarray,
    bank: CentroidBank,
    single_camera: torch.Tensor | np.ndarray,
    *,
    tau_filter: float,
    tau_relabel: float,
    margin: float,
    tau_merge: float,
    topk: int = 8,
    mutual: bool = False,
    merge: bool = True,
    filter_mad: float | None = None,
    reassign: bool = True,
    true_ids: torch.Tensor | np.ndarray | None = None,
    use_gpu: bool = False,
    nlist: int = 0,
    hist_bins: int = HIST_BINS,
) -> RoundResult:
    """Run (a) and (b) on ``features`` (N, D) with ``labels`` (N,); updates ``bank`` in place.

    ``single_camera`` (C,) bool marks pseudo-labelled ids (only those change).
    ``true_ids`` (N,), when known, adds purity / fragmentation / ARI before and after,
    measured over the single-camera images. ``merge=False`` skips step (b);
    ``filter_mad`` and ``reassign`` are those of :func:`filter_and_relabel`.
    """
    labels = as_int64(labels)
    single = as_bool(single_camera)
    known = bank.initialized.cpu().numpy()
    sc_images = (labels >= 0) & single[labels.clip(min=0)]  # (N,) measured population
    truth = as_int64(true_ids)[sc_images] if true_ids is not None else None
    before = label_quality(labels[sc_images], truth) if truth is not None else None

    step_a = filter_and_relabel(
        features,
        labels,
        bank.centroids,
        single,
        tau_filter=tau_filter,
        tau_relabel=tau_relabel,
        margin=margin,
        topk=topk,
        candidate_mask=known,
        use_gpu=use_gpu,
        nlist=nlist,
        filter_mad=filter_mad,
        reassign=reassign,
    )
    new_labels = step_a.labels
    mapping = np.arange(bank.num_ids, dtype=np.int64)
    ids_merged = largest = 0
    if merge:
        step_b = merge_pids(
            bank.centroids,
            single,
            tau_merge=tau_merge,
            topk=topk,
            mutual=mutual,
            candidate_mask=known,
            use_gpu=use_gpu,
            nlist=nlist,
        )
        mapping, ids_merged, largest = step_b.mapping, step_b.ids_merged, step_b.largest_group
        bank.merge(mapping)
        new_labels = apply_mapping(new_labels, mapping)

    kept_sc = new_labels[sc_images]
    stats = RelabelStats(
        images_judged=int(step_a.considered.sum()),
        images_filtered=int(step_a.filtered.sum()),
        images_relabeled=int(step_a.relabeled.sum()),
        ids_merged=int(ids_merged),
        ids_remaining=len(np.unique(kept_sc[kept_sc >= 0])),
        largest_merge_group=int(largest),
        own_sim_hist=similarity_histogram(step_a.s_own, hist_bins),
        best_other_sim_hist=similarity_histogram(step_a.s_best, hist_bins),
        filter_threshold=float(step_a.filter_threshold),
    )
    if before is not None:
        after = label_quality(kept_sc, truth)
        for key in ("purity", "fragmentation", "ari"):
            setattr(stats, f"{key}_before", before[key])
            setattr(stats, key, after[key])
    log.info("relabel round: %s", {k: v for k, v in stats.as_dict().items() if "hist" not in k})
    return RoundResult(new_labels, mapping, stats)
