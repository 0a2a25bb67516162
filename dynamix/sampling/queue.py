"""The single-camera candidate queue: refilled in chunks, chosen from a head window, aged.

The queue is fed from a video-spread pass over all single-camera ids (see
:mod:`dynamix.sampling.cycle`), one chunk at a time, so consecutive batches draw from
different videos (stylistic diversity *across* batches). Within a batch, the
``p_s`` candidates are chosen from the first ``window`` entries, e.g. those that
visually match the batch's multi-camera ids (*within* the batch). Candidates not chosen
wait and age; one that has waited ``max_wait`` batches in the window is taken first, so
every id is used within a bounded number of batches, look-alike or not.

The queue never holds more than ``window + chunk`` ids and an id at most once (a
membership mask over the id space), so a batch costs O(window + chunk), independent of
the number of ids.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from dynamix.sampling.cycle import IdCycle

log = logging.getLogger(__name__)

# (candidate ids (w,), how many to take) -> positions (n,) into the candidate ids
Chooser = Callable[[np.ndarray, int], np.ndarray]


class CandidateQueue:
    """FIFO of candidate ids with per-entry waiting ages; see the module docstring."""

    def __init__(self, cycle: IdCycle, window: int, chunk: int, max_wait: int, num_ids: int) -> None:
        self.cycle = cycle
        self.window, self.chunk, self.max_wait = window, chunk, max_wait
        self.ids = np.empty(0, dtype=np.int64)  # (L,) queued ids, head first
        self.age = np.empty(0, dtype=np.int64)  # (L,) batches waited inside the window
        self.in_queue = np.zeros(num_ids, dtype=bool)  # (C,) membership, O(1) dedupe

    def __len__(self) -> int:
        return len(self.ids)

    def fill(self, rng: np.random.Generator) -> None:
        """Top the queue up to ``window`` ids with chunks of the pass (fewer if fewer exist)."""
        total = len(self.cycle.ids)
        target = min(self.window, total)
        pulled = 0
        while len(self.ids) < target and pulled <= 2 * total + self.chunk:
            new = self.cycle.take(min(self.chunk, total), rng)
            pulled += len(new)
            new = new[~self.in_queue[new]]  # already waiting: keep its place
            self.in_queue[new] = True
            self.ids = np.concatenate([self.ids, new])
            self.age = np.concatenate([self.age, np.zeros(len(new), dtype=np.int64)])

    def take(
        self,
        n: int,
        choose: Chooser | None,
        rng: np.random.Generator,
        exclude: np.ndarray | None = None,
    ) -> np.ndarray:
        """(n,) ids for one batch: overdue ones first, then ``choose`` (or the head) decides.

        ``exclude``: ids already in the batch, passed over (they keep their place); with
        it, fewer than ``n`` ids come back when the window holds fewer others.
        """
        self.fill(rng)
        w = min(self.window, len(self.ids))
        eligible = np.arange(w)
        if exclude is not None:
            eligible = eligible[~np.isin(self.ids[:w], exclude)]
            n = min(n, len(eligible))
        if n > len(eligible):
            raise ValueError(f"queue holds {w} candidates, {n} requested")
        overdue = eligible[self.age[eligible] >= self.max_wait]
        overdue = overdue[np.argsort(-self.age[overdue], kind="stable")][:n]  # oldest first
        free = np.setdiff1d(eligible, overdue, assume_unique=True)
        need = n - len(overdue)
        if need == 0:
            picked = free[:0]
        elif choose is None:
            picked = free[:need]  # queue order: the queue is already shuffled
        else:
            picked = free[choose(self.ids[free], need)]
        chosen = np.concatenate([overdue, picked])
        out = self.ids[chosen]
        keep = np.ones(len(self.ids), dtype=bool)
        keep[chosen] = False
        self.age[:w] += 1  # everyone left in the window waited one more batch
        self.ids, self.age = self.ids[keep], self.age[keep]
        self.in_queue[out] = False
        return out

    def restrict(self, alive: np.ndarray, num_ids: int) -> int:
        """Drop queued ids where ``alive`` (L,) is False (vanished in a relabel); return count."""
        if num_ids > len(self.in_queue):
            self.in_queue = np.concatenate([self.in_queue, np.zeros(num_ids - len(self.in_queue), dtype=bool)])
        self.in_queue[self.ids[~alive]] = False
        self.ids, self.age = self.ids[alive], self.age[alive]
        return int((~alive).sum())

    def state_dict(self) -> dict[str, Any]:
        return {"ids": self.ids.copy(), "age": self.age.copy(), "cycle": self.cycle.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.ids = np.asarray(state["ids"], dtype=np.int64).copy()
        self.age = np.asarray(state["age"], dtype=np.int64).copy()
        self.in_queue[:] = False
        self.in_queue[self.ids] = True
        self.cycle.load_state_dict(state["cycle"])
