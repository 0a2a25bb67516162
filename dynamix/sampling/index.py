"""Identity → image-indices lookup in CSR form, built once per labelling.

A Python ``dict[int, list[int]]`` over 10M images costs gigabytes and minutes to build
(one boxed int per image). Here the image indices are sorted by label once
(O(N log N), numpy) and each id owns a contiguous slice ``order[start:start+count]``;
the lookup of an id's images is O(1). Labels −1 (images filtered by the relabeler) are
left out, so they can never be sampled. Rebuild it after every relabeling window.
"""

from __future__ import annotations

import logging

import numpy as np

from dynamix.errors import DynamixError

log = logging.getLogger(__name__)


def as_array(values: object, dtype: type, name: str) -> np.ndarray:
    """``values`` (a list, numpy array or CPU/GPU tensor) as a 1-D numpy array of ``dtype``."""
    if hasattr(values, "detach"):  # torch tensor, possibly on the GPU
        values = values.detach().cpu().numpy()
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise DynamixError(f"sampler {name} must be one value per image, got shape {arr.shape}")
    return arr.astype(dtype, copy=False)


class IdIndex:
    """Images of each identity as slices of one sorted index array (CSR).

    ``labels`` (N,) ids in the centroid bank's id space, −1 = filtered; ``camids`` (N,)
    camera (for single-camera sources: the video); ``single_images`` (N,) bool, the image
    comes from a single-camera source. Every id must hold images of one kind only.
    """

    def __init__(self, labels: np.ndarray, camids: np.ndarray, single_images: np.ndarray) -> None:
        if not len(labels) == len(camids) == len(single_images):
            raise DynamixError(
                f"sampler inputs disagree in length: {len(labels)} labels, {len(camids)} "
                f"camids, {len(single_images)} single-camera flags; pass one value per image"
            )
        if len(labels) and labels.min() < -1:
            raise DynamixError("sampler labels must be ≥ 0, or −1 for filtered images")
        valid = np.flatnonzero(labels >= 0)
        self.order = valid[np.argsort(labels[valid], kind="stable")]  # (M,) image indices
        ids, starts, counts = np.unique(labels[self.order], return_index=True, return_counts=True)
        self.ids = ids  # (U,) ids present, ascending
        self.starts, self.counts = starts, counts  # (U,) slice of each id in ``order``
        self.num_ids = int(ids[-1]) + 1 if len(ids) else 0  # size of the id space seen
        self._row = np.full(self.num_ids, -1, dtype=np.int64)  # id → row in ``ids``
        self._row[ids] = np.arange(len(ids))
        first = self.order[starts]  # (U,) one image per id
        self.single = single_images[first]  # (U,) kind of each id
        rows = np.repeat(np.arange(len(ids)), counts)  # (M,) id row of each sorted image
        kinds = np.bincount(rows, weights=single_images[self.order], minlength=len(ids))
        mixed = (kinds != 0) & (kinds != counts)
        if mixed.any():
            raise DynamixError(
                f"id {int(ids[np.argmax(mixed)])} holds both multi- and single-camera images; "
                "relabeling must keep single-camera images on single-camera ids"
            )
        self.video = camids[first]  # (U,) camera/video of each id's first image
        self.camids = camids
        # single-camera ids grouped by video (CSR): companions for per-video groups
        sc_rows = np.flatnonzero(self.single)
        by_video = sc_rows[np.argsort(self.video[sc_rows], kind="stable")]
        self._video_ids = ids[by_video]  # (S,) single-camera ids, sorted by video
        self._videos, self._video_starts, self._video_counts = np.unique(
            self.video[by_video], return_index=True, return_counts=True
        )  # (V,) videos present, slice of each in ``_video_ids``
        log.debug("id index: %d images, %d ids", len(self.order), len(ids))

    def ids_of_kind(self, single: bool) -> np.ndarray:
        """(U_kind,) ids present whose images are single-camera (or multi-camera)."""
        return self.ids[self.single == single]

    def has(self, ids: np.ndarray) -> np.ndarray:
        """(n,) bool: which of ``ids`` still own at least one image."""
        ids = np.asarray(ids, dtype=np.int64)
        inside = (ids >= 0) & (ids < self.num_ids)
        out = np.zeros(len(ids), dtype=bool)
        out[inside] = self._row[ids[inside]] >= 0
        return out

    def images_of(self, pid: int) -> np.ndarray:
        """(n,) image indices of ``pid``, a view into the sorted array."""
        row = self._row[pid]
        start = self.starts[row]
        return self.order[start : start + self.counts[row]]

    def video_of(self, ids: np.ndarray) -> np.ndarray:
        """(n,) video (camera of the first image) of each id."""
        return self.video[self._row[ids]]

    def ids_in_video(self, video: int) -> np.ndarray:
        """(n,) single-camera ids whose video is ``video`` (empty if none), a view."""
        row = int(np.searchsorted(self._videos, video))
        if row == len(self._videos) or self._videos[row] != video:
            return self._video_ids[:0]
        start = self._video_starts[row]
        return self._video_ids[start : start + self._video_counts[row]]

    def max_count(self, single: bool) -> int:
        """Largest number of images of one id of the given kind (0 when there is none)."""
        counts = self.counts[self.single == single]
        return int(counts.max()) if len(counts) else 0


def pick_images(
    images: np.ndarray,
    camids: np.ndarray,
    k: int,
    rng: np.random.Generator,
    cap: int = 8,
) -> np.ndarray:
    """``k`` images of one id, spread over its cameras: (k,) image indices.

    Cameras are visited round-robin in random order with a random image each, so an id
    with ≥ k cameras gets k distinct cameras and one with fewer cameras repeats a camera
    only after every camera was used. Images repeat only when the id has fewer than ``k``.
    Ids with more than ``cap·k`` images (merged single-camera ids can hold thousands) are
    first thinned to a random ``cap·k`` subset, so the cost is O(k) whatever the id's size.
    """
    n = len(images)
    if n > cap * k:
        pos = np.unique(rng.integers(0, n, size=cap * k))
        if len(pos) < k:  # practically never: too many collisions
            pos = rng.choice(n, size=k, replace=False)
        images = images[pos]
        n = len(images)
    images = images[rng.permutation(n)]
    cams = camids[images]
    _, cam = np.unique(cams, return_inverse=True)
    cam_rank = rng.permutation(cam.max() + 1)[cam]  # random camera order
    by_cam = np.argsort(cam_rank, kind="stable")  # group by camera, images shuffled inside
    grouped = cam_rank[by_cam]
    turn = np.arange(n) - np.searchsorted(grouped, grouped)  # round number within camera
    spread = images[by_cam][np.lexsort((grouped, turn))]  # round-robin over cameras
    if n >= k:
        return spread[:k]
    return np.concatenate([spread, images[rng.integers(0, n, size=k - n)]])
