"""Which single-camera video each id lives in: the groups of video-restricted contrast.

With ``train.loss.single_negatives: video`` a single-camera image is contrasted only with
ids of its own video (centroid loss and triplet mining). The map is read from the
sampler's :class:`~dynamix.sampling.index.IdIndex` (rebuilt after every relabel
window), so ids, videos and their grouping have one definition; per step it costs
O(batch + ids of the batch's videos), independent of the number of ids.
"""

from __future__ import annotations

import numpy as np
import torch

from dynamix.sampling.index import IdIndex


class VideoGroups:
    """``id_video`` (C,): video of every single-camera id, −1 for multi-camera/unused ids.

    ``index`` is the id index of the live labels; a single-camera id's video is that of
    its first image (:meth:`IdIndex.video_of`). ``num_ids`` is the bank's id space (C).
    """

    def __init__(self, index: IdIndex, num_ids: int, device: torch.device | str = "cpu") -> None:
        self.index = index
        self.id_video = np.full(num_ids, -1, dtype=np.int64)
        self.id_video[index.ids[index.single]] = index.video[index.single]
        self.tensor = torch.from_numpy(self.id_video).to(device)  # (C,) for the loss

    def triplet_groups(self, labels: np.ndarray) -> np.ndarray:
        """(B,) mining group per sample: 0 multi-camera (or filtered), 1 + video otherwise."""
        return np.where(labels >= 0, self.id_video[np.maximum(labels, 0)] + 1, 0)

    def ids_of_batch_videos(self, labels: np.ndarray) -> np.ndarray:
        """(E,) every single-camera id of the videos that ``labels`` (B,) come from."""
        videos = np.unique(self.id_video[labels[labels >= 0]])
        parts = [self.index.ids_in_video(v) for v in videos[videos >= 0]]
        return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)
