"""The Data Sampling Module: endless mixed mini-batches of image indices.

Each batch is ``p_m × k`` multi-camera images followed by ``p_s × k`` single-camera
images, ``k`` consecutive indices per id (the layout batch-hard triplet mining expects):

- multi-camera ids come from shuffled passes over all multi-camera ids, and each id's
  ``k`` images are spread over its cameras (:func:`~dynamix.sampling.index.pick_images`);
- single-camera ids come from the candidate queue (:mod:`dynamix.sampling.queue`): with
  ``matching=True`` those whose centroids are nearest to this batch's multi-camera
  centroids, else the head of the (shuffled) queue, i.e. random mixing. With
  ``ids_per_video`` = g > 1 the queue gives ``ceil(p_s / g)`` *lead* ids and each lead
  brings up to g − 1 random companions from its own video, so single-camera ids can be
  contrasted with people filmed by the same camera (a video short of companions leaves
  its share to more leads from the queue).

Per batch the work is O((p_m + p_s)·k + window + chunk): nothing iterates over all ids
or images, except a pass reshuffle once every ``num_ids / p`` batches and the rebuilds in
:meth:`MixedBatchSampler.update_labels`. All randomness comes from one
``numpy.random.Generator`` whose state is checkpointed.

**Resuming with a DataLoader.** A ``DataLoader`` draws ``prefetch_factor · num_workers``
batches ahead of training, and with ``matching`` a batch depends on the centroids at the
moment it is drawn. So :meth:`~MixedBatchSampler.state_dict` takes the number of batches
the trainer has *consumed*; the drawn-but-unused batches are saved and replayed first
after :meth:`~MixedBatchSampler.load_state_dict`, which makes the resumed run's batches
identical to the uninterrupted run's (given the same loader settings and centroids).
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections import deque
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import Sampler

from dynamix.centroids import CentroidBank
from dynamix.errors import DynamixError
from dynamix.sampling.checks import check_config, check_index
from dynamix.sampling.cycle import IdCycle
from dynamix.sampling.index import IdIndex, as_array, pick_images
from dynamix.sampling.matching import match_nearest
from dynamix.sampling.queue import CandidateQueue, Chooser

log = logging.getLogger(__name__)

MULTI, SINGLE = 0, 1  # values of :meth:`MixedBatchSampler.groups`
STATE_VERSION = 1


def labels_digest(labels: np.ndarray) -> str:
    """Short fingerprint of a labelling, to refuse a state saved under other labels."""
    return hashlib.blake2b(np.ascontiguousarray(labels, dtype=np.int64), digest_size=8).hexdigest()


class MixedBatchSampler(Sampler[list[int]]):
    """Endless DynaMix batches of image indices; use as a DataLoader ``batch_sampler``.

    ``labels`` (N,) ids in the centroid bank's id space, −1 = filtered image;
    ``camids`` (N,) camera per image (for single-camera sources, the video);
    ``single_images`` (N,) bool, the image comes from a single-camera source.
    ``window`` defaults to ``8·p_s``, ``chunk`` (queue refill size) to ``window``,
    ``max_wait`` (batches a candidate may wait in the window) to ``2·window / p_s``.
    ``single_camera=False`` is the ablation without single-camera data: ``p_m × k``
    batches (``p_s`` is ignored; pass ``p_m = P`` to keep the batch size).
    ``centroids`` is the run's :class:`CentroidBank` (read at every batch, so it follows
    the bank's updates) or an ``(C, D)`` tensor; needed only with ``matching``.
    """

    def __init__(
        self,
        labels: Any,
        camids: Any,
        single_images: Any,
        *,
        p_m: int,
        p_s: int,
        k: int,
        window: int | None = None,
        chunk: int | None = None,
        max_wait: int | None = None,
        matching: bool = True,
        single_camera: bool = True,
        centroids: CentroidBank | torch.Tensor | None = None,
        seed: int | np.random.Generator = 0,
        history: int = 64,
        ids_per_video: int = 1,
    ) -> None:
        self.p_m, self.k = p_m, k
        self.ids_per_video = ids_per_video
        self.p_s = p_s if single_camera else 0
        self.single_camera, self.matching = single_camera, matching and single_camera
        self.window = window if window is not None else 8 * max(self.p_s, 1)
        self.chunk = chunk if chunk is not None else self.window
        self.max_wait = max_wait if max_wait is not None else 2 * math.ceil(self.window / max(self.p_s, 1))
        self.centroids = centroids
        check_config(
            p_m,
            self.p_s,
            k,
            self.window,
            self.chunk,
            self.max_wait,
            single_camera,
            self.matching,
            centroids is not None,
            ids_per_video,
        )
        self.rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        self.camids = as_array(camids, np.int64, "camids")
        self.single_images = as_array(single_images, bool, "single_images")
        self.labels = as_array(labels, np.int64, "labels").copy()
        self.index = self._build_index(self.labels)
        self.mc = IdCycle(self.index.ids_of_kind(False))
        sc_ids = self.index.ids_of_kind(True)
        self.queue = CandidateQueue(
            IdCycle(sc_ids, self.index.video_of(sc_ids)),
            self.window,
            self.chunk,
            self.max_wait,
            self.index.num_ids,
        )
        self.position = 0  # batches handed out so far (replays included)
        self._history: deque[tuple[int, list[int]]] = deque(maxlen=history)
        self._replay: deque[list[int]] = deque()
        log.info(
            "sampler: %d multi-camera + %d single-camera ids; batches of %d×%d + %d×%d, "
            "window %d, chunk %d, max wait %d, matching %s, ids per video %d",
            len(self.mc.ids),
            len(sc_ids),
            self.p_m,
            k,
            self.p_s,
            k,
            self.window,
            self.chunk,
            self.max_wait,
            self.matching,
            ids_per_video,
        )

    @property
    def batch_size(self) -> int:
        return (self.p_m + self.p_s) * self.k

    @property
    def visit_bound(self) -> int:
        """Batches within which a single-camera id that entered the queue is used."""
        p = max(self.p_s, 1)
        return math.ceil(self.chunk / p) + self.max_wait + math.ceil(self.window / p) + 1

    def _build_index(self, labels: np.ndarray) -> IdIndex:
        """CSR index of ``labels``, refused if no batch can be composed from it."""
        index = IdIndex(labels, self.camids, self.single_images)
        bank_rows = self._table().shape[0] if self.matching else None
        check_index(index, self.p_m, self.p_s, self.k, self.single_camera, bank_rows)
        return index

    def _table(self) -> torch.Tensor:
        """The live ``(C, D)`` centroid table (a bank's tensor may be replaced by ``.to()``)."""
        bank = self.centroids
        if isinstance(bank, CentroidBank):
            return bank.centroids
        if bank is None:
            raise DynamixError("sampler has no centroids; pass centroids=... for matching")
        return bank

    def _centroids_of(self, ids: np.ndarray) -> np.ndarray:
        """(n, D) fp32 centroids of ``ids``, read from the live bank."""
        table = self._table()
        rows = torch.as_tensor(ids, dtype=torch.long, device=table.device)
        # index_select: advanced indexing of fp16/bf16 CPU tensors is ~1000x slower
        return table.index_select(0, rows).float().cpu().numpy()

    def _images(self, ids: np.ndarray) -> np.ndarray:
        """(len(ids)·k,) image indices, k per id, camera-spread."""
        return np.concatenate([pick_images(self.index.images_of(pid), self.camids, self.k, self.rng) for pid in ids])

    def _matcher(self, mc_ids: np.ndarray) -> Chooser | None:
        """Chooser of the single-camera candidates nearest to ``mc_ids``; None = queue order."""
        if not self.matching:
            return None
        anchors = self._centroids_of(mc_ids)  # (p_m, D), read once per batch

        def choose(candidates: np.ndarray, n: int) -> np.ndarray:
            return match_nearest(self._centroids_of(candidates), anchors, n)

        return choose

    def draw(self) -> list[int]:
        """A fresh batch (no replay): ``p_m·k`` multi-camera then ``p_s·k`` single-camera."""
        mc_ids = self.mc.take(self.p_m, self.rng)
        parts = [self._images(mc_ids)]
        if self.single_camera:
            parts.append(self._images(self._single_ids(mc_ids)))
        return np.concatenate(parts).tolist()

    def _single_ids(self, mc_ids: np.ndarray) -> np.ndarray:
        """(p_s,) distinct single-camera ids: queue picks, grouped by video if asked."""
        chooser = self._matcher(mc_ids)
        g = self.ids_per_video
        if g <= 1:
            return self.queue.take(self.p_s, chooser, self.rng)
        chosen: list[int] = []
        leads = self.queue.take(math.ceil(self.p_s / g), chooser, self.rng)
        for _attempt in range(16):
            for lead in leads:
                if len(chosen) == self.p_s:
                    break
                if lead in chosen:  # already a companion of an earlier lead
                    continue
                chosen.append(int(lead))
                video = self.index.video_of(np.array([lead]))[0]
                pool = self.index.ids_in_video(video)
                pool = pool[~np.isin(pool, chosen)]
                n = min(g - 1, len(pool), self.p_s - len(chosen))
                if n > 0:
                    chosen.extend(int(i) for i in self.rng.choice(pool, size=n, replace=False))
            if len(chosen) == self.p_s:
                return np.asarray(chosen, dtype=np.int64)
            # videos short of companions: more leads for the remaining places
            leads = self.queue.take(self.p_s - len(chosen), chooser, self.rng, exclude=np.asarray(chosen))
        raise DynamixError(
            f"sampler could not compose {self.p_s} distinct single-camera ids in groups of "
            f"{g}; lower p_s or ids_per_video"
        )

    def next_batch(self) -> list[int]:
        """The next batch: a replayed one after a resume, else :meth:`draw`."""
        batch = self._replay.popleft() if self._replay else self.draw()
        self._history.append((self.position, batch))
        self.position += 1
        return batch

    def __iter__(self) -> Iterator[list[int]]:
        while True:
            yield self.next_batch()

    def groups(self, indices: Any) -> np.ndarray:
        """(B,) int64 per image index: ``MULTI`` (0) or ``SINGLE`` (1), for the losses."""
        return self.single_images[as_array(indices, np.int64, "indices")].astype(np.int64)

    def update_labels(self, new_labels: Any) -> None:
        """Follow relabeling (a window's merges and filtering): rebuild the index, drop vanished ids everywhere.

        Filtered images (−1) can no longer be drawn; ids left without images leave the
        queue and the current passes. Batches already drawn (in a DataLoader's prefetch)
        still carry the old indices: the trainer masks their −1 labels.
        """
        labels = as_array(new_labels, np.int64, "labels").copy()
        if len(labels) != len(self.labels):
            raise DynamixError(
                f"update_labels got {len(labels)} labels for {len(self.labels)} images; "
                "labels must stay one per image of the original manifest"
            )
        self.index = self._build_index(labels)
        self.labels = labels
        self.mc.restrict(self.index.ids_of_kind(False))
        sc_ids = self.index.ids_of_kind(True)
        self.queue.cycle.restrict(sc_ids, self.index.video_of(sc_ids))
        dropped = self.queue.restrict(self.index.has(self.queue.ids), self.index.num_ids)
        log.info(
            "sampler relabel: %d multi-camera + %d single-camera ids, %d queued ids dropped",
            len(self.mc.ids),
            len(sc_ids),
            dropped,
        )

    def state_dict(self, consumed: int | None = None) -> dict[str, Any]:
        """Everything to continue exactly; ``consumed`` = batches the trainer has used.

        Batches handed out beyond ``consumed`` (a DataLoader's prefetch) are stored and
        replayed first after loading. Arrays are torch tensors, so the state loads with
        ``torch.load(weights_only=True)``.
        """
        consumed = self.position if consumed is None else consumed
        handed = [batch for pos, batch in self._history if pos >= consumed]
        if not 0 <= self.position - consumed == len(handed):
            raise DynamixError(
                f"sampler has handed out {self.position} batches and remembers the last "
                f"{len(self._history)}; consumed={consumed} is outside that range (raise "
                "`history` above the DataLoader's prefetch depth)"
            )
        pending = [*handed, *self._replay]  # drawn, not yet trained on: replayed first
        queue = self.queue.state_dict()
        return {
            "version": STATE_VERSION,
            "rng": self.rng.bit_generator.state,
            "position": consumed,
            "pending": [torch.tensor(b, dtype=torch.long) for b in pending],
            "mc_cycle": _to_torch(self.mc.state_dict()),
            "queue": _to_torch({**queue, "cycle": _to_torch(queue["cycle"])}),
            "labels_digest": labels_digest(self.labels),
            "config": self._config(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict`; the sampler must hold the same labels."""
        if state.get("version") != STATE_VERSION:
            raise DynamixError(f"sampler state version {state.get('version')} is not supported")
        if state["labels_digest"] != labels_digest(self.labels):
            raise DynamixError(
                "sampler state was saved under other labels; build the sampler with the "
                "labels saved in the same checkpoint before loading its state"
            )
        if state["config"] != self._config():
            raise DynamixError(
                f"sampler state was saved with {state['config']}, this run uses "
                f"{self._config()}; resume with the same sampler settings"
            )
        self.rng.bit_generator.state = state["rng"]
        self.position = int(state["position"])
        self._replay = deque(np.asarray(b).tolist() for b in state["pending"])
        self._history.clear()
        self.mc.load_state_dict(_to_numpy(state["mc_cycle"]))
        queue = state["queue"]
        self.queue.load_state_dict(_to_numpy({**queue, "cycle": _to_numpy(queue["cycle"])}))

    def _config(self) -> dict[str, Any]:
        return {
            "p_m": self.p_m,
            "p_s": self.p_s,
            "k": self.k,
            "window": self.window,
            "chunk": self.chunk,
            "max_wait": self.max_wait,
            "matching": self.matching,
            "single_camera": self.single_camera,
            "ids_per_video": self.ids_per_video,
        }


def _to_torch(state: dict[str, Any]) -> dict[str, Any]:
    return {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in state.items()}


def _to_numpy(state: dict[str, Any]) -> dict[str, Any]:
    return {k: v.numpy() if isinstance(v, torch.Tensor) else v for k, v in state.items()}
