"""On-the-fly relabeling: decisions from the features every step computes anyway.

A relabeling round with a feature pass over every single-camera image costs minutes per
round at a million images. Every training step already has the momentum features of its
batch, and the centroid bank holds one centroid per id, so:

- :meth:`OnlineRelabeler.judge` (every step, before the losses and ``bank.update``) filters
  and reassigns the batch's single-camera images. Cost O(B · (k + ids of the batch's
  videos) · D), flat in the number of images N and ids C: it only gathers rows;
- :meth:`OnlineRelabeler.end_window` (every ``every`` steps) merges ids from the bank alone
  (faiss kNN over the centroids, no image is read), refreshes the candidate lists the next
  window's judging uses, and reports what the window did.

The rules ([ours], each a ``train.relabel`` key):

- *own similarity* ``s_own = cos(f, C[label])``; for an id whose centroid is not
  initialised yet (the bank starts empty and fills at first sight), the mean of the other
  images of the same label in the batch (leave-one-out; batches hold k images per id).
  With neither, the image is not judged;
- *filter*: label −1 if ``s_own < max(tau_filter, median − filter_mad · MAD)`` over a ring
  buffer of the last ``filter_history`` own similarities: the rule follows how concentrated
  the embedding is at this point of training. No filtering before ``filter_min_history``
  similarities were seen;
- *reassign*: candidates are the other live ids of the image's video and the ``topk``
  nearest centroids of its own id (the last window's kNN graph), initialised ones only.
  Moved to the best one if ``s_best ≥ tau_relabel`` and ``s_best ≥ s_own + margin``; a
  moved image is not also filtered;
- *merge*: kNN graph over the initialised, live single-camera centroids, edges
  ``≥ tau_merge`` (optionally mutual), between ids of one video (``merge_scope: video``:
  broken tracks) or any two (``all``), among ids updated in the last ``merge_max_age``
  steps; connected components merge into their smallest id. A window merging away more
  than ``max_merge_fraction`` of the live single-camera ids merges nothing (collapse guard).

Only single-camera images and ids are ever judged or merged. Everything is deterministic
in its inputs (ties go to the smallest id), so DDP ranks fed the same all-gathered batch
agree without communication.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from dynamix.centroids import CentroidBank, group_sum
from dynamix.config import RelabelConfig
from dynamix.errors import DynamixError
from dynamix.relabel.filtering import as_bool, as_int64, filter_threshold
from dynamix.relabel.merging import MergeResult, apply_mapping, merge_components
from dynamix.relabel.precision import (
    filter_precision,
    majority_true_id,
    merge_precision,
    reassign_precision,
)
from dynamix.relabel.search import knn_search, take_rows
from dynamix.relabel.stats import label_quality

log = logging.getLogger(__name__)

QUALITY_KEYS = ("purity", "fragmentation", "ari")
# The arrays a checkpoint holds (besides the open window's decision log).
ARRAY_STATE = (
    "id_single",
    "last_seen",
    "neighbours",
    "history",
    "video_keys",
    "video_starts",
    "video_counts",
    "video_ids",
    "id_video",
)
# The keys of every window's stats, in order (a CSV header); TRUTH_KEYS only with true ids.
STAT_KEYS = (
    "step",
    "images_judged",
    "images_filtered",
    "images_relabeled",
    "ids_merged",
    "ids_remaining",
    "merge_edges",
    "largest_merge_group",
    "merge_rejected",
    "filter_threshold",
    "merge_threshold",
    "judge_seconds",
    "seconds",
)
TRUTH_KEYS = (
    "filter_precision",
    "reassign_precision",
    "merge_precision",
    "purity_before",
    "purity",
    "fragmentation_before",
    "fragmentation",
    "ari_before",
    "ari",
)


@dataclass
class WindowResult:
    """What :meth:`OnlineRelabeler.end_window` did: apply ``labels``, log ``stats``."""

    labels: np.ndarray  # (N,) int64 live labels after merging, −1 = filtered
    mapping: np.ndarray  # (C,) int64 id mapping applied to labels and bank (identity if none)
    stats: dict[str, float | int] = field(default_factory=dict)  # flat numbers: MLflow relabel/<key>, a CSV row


def segment_starts(keys: np.ndarray) -> np.ndarray:
    """(n,) bool: where a new run of equal values begins in sorted ``keys`` (n,)."""
    first = np.ones(len(keys), dtype=bool)
    first[1:] = keys[1:] != keys[:-1]
    return first


def merge_threshold(candidate_sims: np.ndarray, tau_merge: float, merge_mad: float | None) -> float:
    """``tau_merge``, raised to ``median + merge_mad · MAD`` of the candidate edges' cosines.

    Early in training the embedding is concentrated (every cosine near 1) and a fixed
    threshold merges whole videos; measured on the default world, the first window's fixed
    0.9 merged 219 ids at 8 % precision. An edge must stand out from the similarities of
    its own kind (in-scope kNN edges of this window) by ``merge_mad`` robust deviations.
    """
    if merge_mad is None or len(candidate_sims) == 0:
        return float(tau_merge)
    median = float(np.median(candidate_sims))
    mad = float(np.median(np.abs(candidate_sims - median)))
    return max(float(tau_merge), median + float(merge_mad) * mad)


class OnlineRelabeler:
    """Per-step filtering and reassignment, per-window merging, of single-camera labels.

    ``labels`` (N,) the initial labels in the bank's id space, ``single_images`` (N,) bool,
    ``videos`` (N,) the video (camid) of every single-camera image, ``num_ids`` the bank's C.
    Keeps O(C · topk) state (the kNN candidate lists, the last step each id was seen) plus
    the id → video map; the window's decisions are logged until :meth:`end_window`.
    """

    def __init__(
        self,
        labels: np.ndarray,
        single_images: np.ndarray,
        videos: np.ndarray,
        num_ids: int,
        cfg: RelabelConfig,
        use_gpu: bool = False,
    ) -> None:
        labels, self.single_images, self.videos = as_int64(labels), as_bool(single_images), as_int64(videos)
        if not len(labels) == len(self.single_images) == len(self.videos):
            raise DynamixError(
                f"online relabeler inputs disagree in length: {len(labels)} labels, "
                f"{len(self.single_images)} single-camera flags, {len(self.videos)} videos; pass one per image"
            )
        if len(labels) and (labels.min() < -1 or labels.max() >= num_ids):
            raise DynamixError(f"online relabeler labels must lie in [-1, {num_ids}); rebuild them from the manifests")
        if (self.videos[self.single_images] < 0).any():
            raise DynamixError("online relabeler: a single-camera image has a negative video (camid); re-run prepare")
        self.cfg, self.num_ids, self.use_gpu = cfg, int(num_ids), bool(use_gpu)
        sc = self.single_images & (labels >= 0)
        self.id_single = np.zeros(num_ids, dtype=bool)  # (C,) pseudo-labelled ids: the only ones judged
        self.id_single[labels[sc]] = True
        self.last_seen = np.full(num_ids, -1, dtype=np.int64)  # (C,) last step an id was in a batch
        self.neighbours = np.full((num_ids, cfg.topk), -1, dtype=np.int32)  # (C, topk) last window's kNN
        self.history = np.zeros(cfg.filter_history, dtype=np.float32)  # ring buffer of s_own
        self.history_pos = self.history_count = 0
        self.merge_threshold = float("nan")  # the last window's (reported; NaN before any merge)
        self._refresh_videos(labels)
        self._reset_window()

    # ---- the id → video map ---------------------------------------------------------------
    def _refresh_videos(self, labels: np.ndarray) -> None:
        """Video → live ids (CSR) and each id's main video, from the live labels: O(N log N)."""
        sc = np.flatnonzero(self.single_images & (labels >= 0))
        key, counts = np.unique(self.videos[sc] * self.num_ids + labels[sc], return_counts=True)
        video, ids = key // self.num_ids, key % self.num_ids  # sorted by video, then id
        starts = np.flatnonzero(segment_starts(video))
        self.video_keys = video[starts]  # (V,) videos with live single-camera ids
        self.video_starts = starts  # (V,) slice of each video in ``video_ids``
        self.video_counts = np.diff(np.append(starts, len(video)))
        self.video_ids = ids  # (P,) ids of every video; an id may sit in several
        self.id_video = np.full(self.num_ids, -1, dtype=np.int64)  # (C,) the video of most of its images
        order = np.lexsort((video, -counts, ids))  # per id: most images first, then smallest video
        first = order[segment_starts(ids[order])]
        self.id_video[ids[first]] = video[first]

    def ids_of_videos(self, videos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every live id of each of ``videos`` (n,): (owner (P,) position in ``videos``, id (P,))."""
        if len(self.video_keys) == 0:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        pos = np.searchsorted(self.video_keys, videos).clip(max=len(self.video_keys) - 1)
        counts = np.where(self.video_keys[pos] == videos, self.video_counts[pos], 0)
        owner = np.repeat(np.arange(len(videos)), counts)
        offset = np.arange(len(owner)) - np.repeat(np.cumsum(counts) - counts, counts)
        return owner, self.video_ids[np.repeat(self.video_starts[pos], counts) + offset]

    # ---- per step ---------------------------------------------------------------------------
    def filter_threshold(self) -> float:
        """The own-similarity threshold the next step applies; NaN while filtering is off."""
        if not self.cfg.filter or self.history_count < self.cfg.filter_min_history:
            return float("nan")
        return filter_threshold(self.history[: self.history_count], self.cfg.tau_filter, self.cfg.filter_mad)

    def _remember(self, values: np.ndarray) -> None:
        """Append ``values`` to the ring buffer of own similarities (oldest overwritten)."""
        size = len(self.history)
        values = values[-size:]
        slots = (self.history_pos + np.arange(len(values))) % size
        self.history[slots] = values
        self.history_pos = int((self.history_pos + len(values)) % size)
        self.history_count = int(min(self.history_count + len(values), size))

    @torch.no_grad()
    def judge(
        self, index: np.ndarray, features: torch.Tensor, labels: np.ndarray, bank: CentroidBank, step: int
    ) -> np.ndarray:
        """New labels (B,) for a batch: −1 filtered now, another id reassigned now, else as given.

        ``index`` (B,) image indices, ``features`` (B, D) the batch's momentum features,
        ``labels`` (B,) their live labels (−1 = filtered); call before the losses and before
        ``bank.update``, every step (before ``warmup`` it only notes which ids were seen, for
        ``merge_max_age``). An image twice in a batch is judged once. Records the decisions
        for :meth:`end_window`.
        """
        start = time.perf_counter()
        index, labels = as_int64(index), as_int64(labels)
        out = labels.copy()
        cfg = self.cfg
        active = cfg.enabled and step >= cfg.warmup and (cfg.filter or cfg.reassign)
        sel = np.flatnonzero((labels >= 0) & self.single_images[index]) if active else np.empty(0, np.int64)
        if len(sel):
            images, first, inverse = np.unique(index[sel], return_index=True, return_inverse=True)
            rows = sel[first]  # (n,) batch rows, one per image, by image index
            new = self._decide(images, rows, features, labels, bank)
            out[sel] = new[inverse]
            changed = new != labels[rows]
            self._log_idx.append(images[changed])
            self._log_old.append(labels[rows][changed])
            self._log_new.append(new[changed])
        kept = out[out >= 0]
        self.last_seen[kept] = step  # the rows bank.update is about to refresh
        self._judge_seconds += time.perf_counter() - start
        return out

    def _decide(
        self, images: np.ndarray, rows: np.ndarray, features: torch.Tensor, labels: np.ndarray, bank: CentroidBank
    ) -> np.ndarray:
        """(n,) new labels of the batch rows ``rows`` (images ``images``), all judged-eligible."""
        cfg, dev = self.cfg, bank.device
        own = labels[rows]  # (n,)
        feats = F.normalize(take_rows(features.detach(), rows).to(dev).float(), dim=1)  # (n, D)
        own_t = torch.from_numpy(own).to(dev)
        initialised = (bank.counts[own_t] > 0).cpu().numpy()  # (n,)
        cents = F.normalize(bank.centroids[own_t].float(), dim=1)
        s_own = (feats * cents).sum(1)  # (n,)
        # leave-one-out reference for ids without a centroid: the other images of the label here
        ids, sums, counts = group_sum(feats, own_t)
        pos = torch.searchsorted(ids, own_t)
        others = sums[pos] - feats
        s_loo = (feats * F.normalize(others, dim=1)).sum(1)
        has_loo = (counts[pos] > 1).cpu().numpy()
        s_own = np.where(initialised, s_own.cpu().numpy(), s_loo.cpu().numpy()).astype(np.float32)
        judged = initialised | has_loo
        self._judged += int(judged.sum())

        s_best = np.full(len(rows), -np.inf, dtype=np.float32)
        best = np.full(len(rows), -1, dtype=np.int64)
        if cfg.reassign:
            s_best, best = self._best_candidates(feats, own, images, bank)
        move = judged & (best >= 0) & (s_best >= cfg.tau_relabel) & (s_best >= s_own + cfg.margin)
        threshold = self.filter_threshold()  # from the history before this batch (NaN = off)
        drop = judged & ~move & (s_own < threshold)  # NaN compares False: nothing dropped
        self._remember(s_own[judged])
        new = own.copy()
        new[move] = best[move]
        new[drop] = -1
        return new

    def _best_candidates(
        self, feats: torch.Tensor, own: np.ndarray, images: np.ndarray, bank: CentroidBank
    ) -> tuple[np.ndarray, np.ndarray]:
        """(n,) best candidate similarity and id (−inf, −1 where none) of each judged row."""
        n = len(own)
        owner_v, ids_v = self.ids_of_videos(self.videos[images])
        knn = self.neighbours[own].astype(np.int64)  # (n, topk)
        owner = np.concatenate([owner_v, np.repeat(np.arange(n), knn.shape[1])])
        cand = np.concatenate([ids_v, knn.ravel()])
        keep = cand >= 0
        keep[keep] = self.id_single[cand[keep]]
        keep &= cand != own[owner]
        owner, cand = owner[keep], cand[keep]
        key = np.unique(owner * self.num_ids + cand)  # one pair per (row, id), sorted
        owner, cand = key // self.num_ids, key % self.num_ids
        cand_t = torch.from_numpy(cand).to(bank.device)
        live = (bank.counts[cand_t] > 0).cpu().numpy()
        owner, cand, cand_t = owner[live], cand[live], cand_t[torch.from_numpy(live).to(bank.device)]
        s_best = np.full(n, -np.inf, dtype=np.float32)
        best = np.full(n, -1, dtype=np.int64)
        if len(cand) == 0:
            return s_best, best
        vecs = F.normalize(bank.centroids[cand_t].float(), dim=1)  # (P, D)
        sims = (feats[torch.from_numpy(owner).to(bank.device)] * vecs).sum(1).cpu().numpy()
        order = np.lexsort((cand, -sims, owner))  # per row: most similar first, then smallest id
        top = order[segment_starts(owner[order])]
        s_best[owner[top]], best[owner[top]] = sims[top], cand[top]
        return s_best, best

    # ---- per window -------------------------------------------------------------------------
    def window_due(self, step: int) -> bool:
        """True at the end of a window: ``warmup`` (first kNN graph) and every ``every`` steps on."""
        cfg = self.cfg
        return cfg.enabled and step >= cfg.warmup and (step - cfg.warmup) % cfg.every == 0

    def _reset_window(self) -> None:
        self._log_idx: list[np.ndarray] = []
        self._log_old: list[np.ndarray] = []
        self._log_new: list[np.ndarray] = []
        self._judged = 0
        self._judge_seconds = 0.0

    def _window_log(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The window's decisions in order: image, label before, label after (−1 = filtered)."""
        if not self._log_idx:
            empty = np.empty(0, np.int64)
            return empty, empty, empty
        return np.concatenate(self._log_idx), np.concatenate(self._log_old), np.concatenate(self._log_new)

    def pending(self) -> bool:
        """True while the open window holds judged images its report has not covered yet."""
        return self._judged > 0

    @torch.no_grad()
    def end_window(
        self,
        labels: np.ndarray,
        bank: CentroidBank,
        step: int,
        true_ids: np.ndarray | None = None,
        merge: bool = True,
    ) -> WindowResult:
        """Merge ids from the bank, refresh the candidate lists, report the window.

        ``labels`` (N,) the live labels, holding :meth:`judge`'s decisions. Merges through
        ``bank.merge`` and returns the mapped labels; reads no image and no feature. O(N)
        on labels plus one faiss kNN search over the live single-camera centroids.

        ``stats`` holds :data:`STAT_KEYS` in that order (``filter_threshold`` NaN while
        filtering is off). ``true_ids`` (N,) (true person, −1 junk; reporting only, no
        decision reads it) adds :data:`TRUTH_KEYS` (see :mod:`dynamix.relabel.precision`):
        ``filter_precision`` (NaN if nothing was filtered in the window),
        ``reassign_precision`` (NaN if nothing moved), ``merge_precision`` of the proposed
        merge edges, scored even when the collapse guard rejects them (NaN without an edge,
        with merging off or before ``warmup``), and ``purity``/``fragmentation``/``ari`` of
        the kept single-camera images after the merge, ``*_before`` at the window's start.
        ``merge=False`` reports without merging: the closing window at the last step,
        after which no training would use a merge.
        """
        start = time.perf_counter()
        cfg = self.cfg
        labels = as_int64(labels).copy()
        single = self.single_images
        truth = None if true_ids is None else as_int64(true_ids)
        idx, old, new = self._window_log()
        stats: dict[str, float | int] = dict.fromkeys(STAT_KEYS, 0)
        stats.update(step=int(step), images_judged=self._judged)
        stats.update(images_filtered=int((new < 0).sum()), images_relabeled=int((new >= 0).sum()))
        if truth is not None:
            stats.update(dict.fromkeys(TRUTH_KEYS, float("nan")))
            at_start = labels.copy()  # undo the window's decisions, the first one of each image wins
            first = np.unique(idx, return_index=True)[1]
            at_start[idx[first]] = old[first]
            majority = majority_true_id(at_start[single], truth[single], self.num_ids)
            stats["filter_precision"] = filter_precision(old[new < 0], truth[idx[new < 0]], majority)
            stats["reassign_precision"] = reassign_precision(new[new >= 0], truth[idx[new >= 0]], majority)
            before = label_quality(at_start[single], truth[single])
            stats.update({f"{k}_before": before[k] for k in QUALITY_KEYS})

        self._refresh_videos(labels)  # the window's moves may change an id's main video
        live = np.zeros(self.num_ids, dtype=bool)
        live[labels[single & (labels >= 0)]] = True
        live &= self.id_single
        ids = np.flatnonzero(live & (bank.counts > 0).cpu().numpy())  # (M,) graph nodes
        sims, nbr = self._knn(ids, bank)
        mapping = np.arange(self.num_ids, dtype=np.int64)
        merging = merge and cfg.merge and cfg.enabled and step >= cfg.warmup
        if merging:
            merged = self._merge_graph(ids, sims, nbr, step)
            stats.update(merge_edges=merged.num_edges, largest_merge_group=merged.largest_group)
            if truth is not None:  # scored on the labels it merges, even if the guard rejects it
                now = majority_true_id(labels[single], truth[single], self.num_ids)
                stats["merge_precision"] = merge_precision(merged.mapping, now)
            if merged.ids_merged > cfg.max_merge_fraction * int(live.sum()):
                stats["merge_rejected"] = 1
                log.warning(
                    "relabel window at step %d: merge of %d of %d live ids rejected (collapse guard "
                    "train.relabel.max_merge_fraction=%g)",
                    step,
                    merged.ids_merged,
                    int(live.sum()),
                    cfg.max_merge_fraction,
                )
            elif merged.ids_merged:
                mapping = merged.mapping
                bank.merge(mapping)
                labels = apply_mapping(labels, mapping)
                moved = np.flatnonzero(mapping != np.arange(self.num_ids))
                np.maximum.at(self.last_seen, mapping[moved], self.last_seen[moved])
                stats["ids_merged"] = len(moved)
        self._store_neighbours(ids, nbr, mapping)
        if stats["ids_merged"]:
            self._refresh_videos(labels)
        stats["ids_remaining"] = len(np.unique(labels[single & (labels >= 0)]))
        stats["filter_threshold"] = self.filter_threshold()
        stats["merge_threshold"] = self.merge_threshold if merging else float("nan")  # this window's only
        if truth is not None:
            after = label_quality(labels[single], truth[single])
            stats.update({k: after[k] for k in QUALITY_KEYS})
        stats["judge_seconds"] = self._judge_seconds
        stats["seconds"] = time.perf_counter() - start
        self._reset_window()
        log.info("relabel window at step %d: %s", step, {k: round(v, 4) for k, v in stats.items()})
        return WindowResult(labels, mapping, stats)

    def _knn(self, ids: np.ndarray, bank: CentroidBank) -> tuple[np.ndarray, np.ndarray]:
        """Cosine top-(topk + 1) among the centroids of ``ids`` (M,): (M, k') sims and positions."""
        if len(ids) < 2 or not (self.cfg.merge or self.cfg.reassign):
            return np.zeros((len(ids), 0), np.float32), np.zeros((len(ids), 0), np.int64)
        vectors = take_rows(bank.centroids, ids)
        return knn_search(vectors, vectors, self.cfg.topk + 1, use_gpu=self.use_gpu, nlist=self.cfg.nlist)

    def _merge_graph(self, ids: np.ndarray, sims: np.ndarray, nbr: np.ndarray, step: int) -> MergeResult:
        """The window's merge: kNN edges ≥ tau_merge, in scope, between recently seen ids."""
        cfg = self.cfg
        rows = np.repeat(np.arange(len(ids)), nbr.shape[1])
        cols = nbr.ravel()
        keep = (cols >= 0) & (cols != rows)
        if cfg.merge_max_age > 0:
            seen = self.last_seen[ids]
            fresh = (seen >= 0) & (step - seen <= cfg.merge_max_age)
            keep &= fresh[rows] & fresh[cols.clip(min=0)]
        if cfg.merge_scope == "video":
            video = self.id_video[ids]
            keep &= (video[rows] >= 0) & (video[rows] == video[cols.clip(min=0)])
        self.merge_threshold = merge_threshold(sims.ravel()[keep], cfg.tau_merge, cfg.merge_mad)
        keep &= sims.ravel() >= self.merge_threshold
        return merge_components(self.num_ids, ids, rows[keep], cols[keep], mutual=cfg.mutual)

    def _store_neighbours(self, ids: np.ndarray, nbr: np.ndarray, mapping: np.ndarray) -> None:
        """Each id's nearest other ids (after the merge's mapping): next window's candidates."""
        self.neighbours.fill(-1)
        if nbr.shape[1] == 0:
            return
        glob = np.where(nbr >= 0, mapping[ids[nbr.clip(min=0)]], -1)  # (M, k') global ids
        own = mapping[ids]
        glob[glob == own[:, None]] = -1
        # keep the first topk valid entries of each row, in similarity order
        valid = glob >= 0
        rank = np.cumsum(valid, axis=1) - 1
        keep = valid & (rank < self.cfg.topk)
        table = np.full((len(ids), self.cfg.topk), -1, dtype=np.int32)
        r, c = np.nonzero(keep)
        table[r, rank[r, c]] = glob[r, c]
        reps = own == ids  # merged-away ids keep no list; a representative keeps its own
        self.neighbours[ids[reps]] = table[reps]

    # ---- checkpoints --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything judging and the open window depend on, as tensors and numbers only."""
        idx, old, new = self._window_log()
        arrays = {key: getattr(self, key) for key in ARRAY_STATE}
        arrays.update(log_idx=idx, log_old=old, log_new=new)
        state: dict[str, Any] = {k: torch.from_numpy(np.ascontiguousarray(v).copy()) for k, v in arrays.items()}
        state.update(
            history_pos=self.history_pos,
            history_count=self.history_count,
            judged=self._judged,
        )  # judge_seconds is wall clock, not state: a resumed window counts from the resume
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output; the next judge continues exactly."""
        for key in ("id_single", "last_seen", "neighbours", "history"):  # fixed by the data and config
            shape = getattr(self, key).shape
            if tuple(state[key].shape) != shape:
                raise DynamixError(
                    f"relabeler state in the checkpoint has {key} of shape {tuple(state[key].shape)}, the run "
                    f"expects {shape}; resume with the same data and train.relabel.topk/filter_history"
                )
        for key in ARRAY_STATE:
            setattr(self, key, state[key].numpy().copy())
        self.history_pos, self.history_count = int(state["history_pos"]), int(state["history_count"])
        self._reset_window()
        if len(state["log_idx"]):
            self._log_idx = [state["log_idx"].numpy().copy()]
            self._log_old = [state["log_old"].numpy().copy()]
            self._log_new = [state["log_new"].numpy().copy()]
        self._judged, self._judge_seconds = int(state["judged"]), 0.0
