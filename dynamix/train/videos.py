"""Which single-camera video each id lives in: the groups of video-restricted contrast.

With ``train.loss.single_negatives: video`` a single-camera image is contrasted only with
ids of its own video (centroid loss and triplet mining). The map is rebuilt from the live
labels after every relabel round, O(N); per step it costs O(batch + ids of the batch's
videos), independent of the number of ids.
"""

from __future__ import annotations

import numpy as np
import torch


class VideoGroups:
    """``id_video`` (C,): video of every single-camera id, −1 for multi-camera/unused ids.

    ``labels`` (N,) live labels (−1 = filtered), ``camids`` (N,) camera per image (the
    video for single-camera images), ``single_images`` (N,) bool. A merged id spanning
    videos takes the video of its last image in table order.
    """

    def __init__(
        self,
        labels: np.ndarray,
        camids: np.ndarray,
        single_images: np.ndarray,
        num_ids: int,
        device: torch.device | str = "cpu",
    ) -> None:
        self.id_video = np.full(num_ids, -1, dtype=np.int64)
        rows = single_images & (labels >= 0)
        self.id_video[labels[rows]] = camids[rows]
        sc_ids = np.flatnonzero(self.id_video >= 0)
        self._ids = sc_ids[np.argsort(self.id_video[sc_ids], kind="stable")]  # by video
        self._videos, self._starts, self._counts = np.unique(
            self.id_video[self._ids], return_index=True, return_counts=True
        )
        self.tensor = torch.from_numpy(self.id_video).to(device)  # (C,) for the loss

    def triplet_groups(self, labels: np.ndarray) -> np.ndarray:
        """(B,) mining group per sample: 0 multi-camera (or filtered), 1 + video otherwise."""
        return np.where(labels >= 0, self.id_video[np.maximum(labels, 0)] + 1, 0)

    def ids_of_batch_videos(self, labels: np.ndarray) -> np.ndarray:
        """(E,) every single-camera id of the videos that ``labels`` (B,) come from."""
        videos = np.unique(self.id_video[labels[labels >= 0]])
        rows = np.searchsorted(self._videos, videos[videos >= 0])
        if len(rows) == 0:
            return self._ids[:0]
        starts, counts = self._starts[rows], self._counts[rows]
        return np.concatenate([self._ids[s : s + c] for s, c in zip(starts, counts, strict=True)])
