"""Endless shuffled passes over a set of ids, read a few ids at a time.

Every id is drawn once per pass (balanced exposure, unlike independent draws), and a pass
is one vectorised numpy shuffle of the ids, amortised over the ``len(ids) / n`` reads it
serves, so a read costs O(n) whatever the number of ids. Nothing but the id order is
materialised: the images of an id are picked only when the id is used.

With ``videos`` the pass is *video-spread*: each video's ids are spaced evenly (with
jitter) along the pass, so any short stretch of it, e.g. one refill chunk of the
single-camera queue, holds ids from many different videos, in proportion to their size,
instead of a random permutation's occasional clumps.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


def video_spread_order(ids: np.ndarray, videos: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(M,) ``ids`` reordered so that each video's ids are spread evenly along the pass.

    The j-th of a video's n ids (in random order) gets the key ``(j + u) / n`` with
    ``u ~ U(0, 1)``; sorting by key interleaves the videos. O(M log M) per pass.
    """
    perm = rng.permutation(len(ids))
    _, vid, counts = np.unique(videos[perm], return_inverse=True, return_counts=True)
    by_video = np.argsort(vid, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(len(ids), dtype=np.int64)
    rank[by_video] = np.arange(len(ids)) - starts[vid[by_video]]  # position inside video
    key = (rank + rng.random(len(ids))) / counts[vid]
    return ids[perm][np.argsort(key, kind="stable")]


class IdCycle:
    """Shuffled passes over ``ids`` (M,); optional ``videos`` (M,) makes them video-spread."""

    def __init__(self, ids: np.ndarray, videos: np.ndarray | None = None) -> None:
        self.ids = np.asarray(ids, dtype=np.int64)
        self.videos = videos
        self.remaining = np.empty(0, dtype=np.int64)  # rest of the current pass
        self.passes = 0  # passes started, for logs and tests

    def _new_pass(self, rng: np.random.Generator) -> np.ndarray:
        self.passes += 1
        log.debug("id pass %d over %d ids", self.passes, len(self.ids))
        if self.videos is None:
            return rng.permutation(self.ids)
        return video_spread_order(self.ids, self.videos, rng)

    def take(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """(n,) distinct ids, the next ones of the pass; ``n ≤ len(ids)``.

        At a pass boundary the old pass's tail is completed from a fresh pass without
        repeating an id, and the tail's ids are put back at random places in the rest of
        the new pass, so every id is still drawn exactly once per pass.
        """
        if len(self.remaining) >= n:
            out, self.remaining = self.remaining[:n], self.remaining[n:]
            return out
        head = self.remaining
        fresh = self._new_pass(rng)
        if len(head):
            fresh = fresh[~np.isin(fresh, head)]
        need = n - len(head)
        out, rest = np.concatenate([head, fresh[:need]]), fresh[need:]
        if len(head):
            rest = np.insert(rest, rng.integers(0, len(rest) + 1, size=len(head)), head)
        self.remaining = rest
        return out

    def restrict(self, ids: np.ndarray, videos: np.ndarray | None = None) -> None:
        """Follow a relabeling: the new id set; vanished ids leave the current pass."""
        self.ids = np.asarray(ids, dtype=np.int64)
        self.videos = videos
        self.remaining = self.remaining[np.isin(self.remaining, self.ids)]

    def state_dict(self) -> dict[str, Any]:
        return {"remaining": self.remaining.copy(), "passes": self.passes}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.remaining = np.asarray(state["remaining"], dtype=np.int64).copy()
        self.passes = int(state["passes"])
