"""The Efficient Centroids Module: one unit-norm centroid per identity.

The bank has shape ``(num_ids, dim)`` and covers multi-camera and single-camera ids alike;
at 100k+ ids it is stored in fp16/bf16 (434k × 768 in fp16 ≈ 0.67 GB) while every
computation on it runs in fp32. It changes in exactly three places, never inside
``backward()``:

- :meth:`CentroidBank.init_from`: mean momentum feature per id, callable in chunks (a
  streaming pass over the data), since only sums and counts are accumulated;
- :meth:`CentroidBank.update`: once per step, from the batch's momentum features grouped
  by id, ``c ← normalize(μ·c + (1−μ)·mean)``. Grouping sorts the batch by id and sums
  with one-hot matrix products (:func:`group_sum`): deterministic, unlike the float
  atomics of ``index_add_`` on CUDA, and O(batch) whatever the number of ids; only the
  batch's rows are written;
- :meth:`CentroidBank.merge`: after PID merging, count-weighted means of merged rows.

Per-id counts (images that contributed) are kept for the count-weighted merge; an id with
count 0 has a zero row and takes the batch mean at first sight.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from dynamix.errors import DynamixError

log = logging.getLogger(__name__)

GatherFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
_DTYPES = {
    "fp16": torch.float16,
    "float16": torch.float16,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "fp32": torch.float32,
    "float32": torch.float32,
}


def resolve_dtype(dtype: torch.dtype | str) -> torch.dtype:
    """``"fp16"``/``"bf16"``/``"fp32"`` (as written in params.yaml) or a torch dtype."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in _DTYPES:
        raise DynamixError(f"centroid dtype {dtype!r} is unknown; use fp16, bf16 or fp32")
    return _DTYPES[dtype]


def _identity_gather(features: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return features, labels


@torch.no_grad()
def group_sum(
    features: torch.Tensor,
    labels: torch.Tensor,
    weights: torch.Tensor | None = None,
    groups_per_block: int = 256,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-id sums of ``features`` (N, D) grouped by ``labels`` (N,); labels < 0 are skipped.

    Returns ``ids`` (U,) sorted, ``sums`` (U, D) fp32 and ``counts`` (U,) long; with
    ``weights`` (N,) the sums are weighted. Rows are sorted by id, then each block of
    ``groups_per_block`` ids is reduced by a one-hot matrix product over its contiguous
    rows: deterministic (no float atomics) and O(N · groups_per_block · D) in all.
    """
    keep = labels >= 0
    order = torch.argsort(labels[keep], stable=True)
    labels = labels[keep][order]  # (N,) sorted
    feats = features[keep][order].float()  # (N, D)
    w = None if weights is None else weights[keep][order].float()
    ids, counts = torch.unique_consecutive(labels, return_counts=True)  # (U,), (U,)
    sums = feats.new_zeros(len(ids), feats.shape[1])
    bounds = [0, *torch.cumsum(counts, 0).tolist()]  # (U+1,) row ranges, one sync
    for g0 in range(0, len(ids), groups_per_block):
        g1 = min(g0 + groups_per_block, len(ids))
        rows = slice(bounds[g0], bounds[g1])
        group = torch.repeat_interleave(torch.arange(g1 - g0, device=labels.device), counts[g0:g1])
        onehot = (group[None, :] == torch.arange(g1 - g0, device=labels.device)[:, None]).float()
        if w is not None:
            onehot = onehot * w[None, rows]
        with torch.autocast(device_type=feats.device.type, enabled=False):
            sums[g0:g1] = onehot @ feats[rows]  # (G, D)
    return ids, sums, counts


class CentroidBank:
    """``(num_ids, dim)`` unit-norm centroids in a compact dtype, with per-id counts."""

    def __init__(
        self,
        num_ids: int,
        dim: int,
        dtype: torch.dtype | str = torch.float16,
        device: torch.device | str | None = None,
    ) -> None:
        self.centroids = torch.zeros(num_ids, dim, dtype=resolve_dtype(dtype), device=device)
        self.counts = torch.zeros(num_ids, dtype=torch.long, device=device)  # (C,)
        self._init_sums: torch.Tensor | None = None  # (C, D) fp32, only while initialising

    @property
    def num_ids(self) -> int:
        return self.centroids.shape[0]

    @property
    def dim(self) -> int:
        return self.centroids.shape[1]

    @property
    def dtype(self) -> torch.dtype:
        return self.centroids.dtype

    @property
    def device(self) -> torch.device:
        return self.centroids.device

    @property
    def initialized(self) -> torch.Tensor:
        """(C,) bool: ids with a centroid (merged-away and never-seen ids are False)."""
        return self.counts > 0

    def to(self, device: torch.device | str) -> CentroidBank:
        self.centroids = self.centroids.to(device)
        self.counts = self.counts.to(device)
        if self._init_sums is not None:
            self._init_sums = self._init_sums.to(device)
        return self

    @torch.no_grad()
    def init_from(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        """Accumulate ``features`` (N, D) into per-id means; call once or in chunks.

        After every call the touched rows hold ``normalize(sum of all features seen)``, so
        chunked and one-shot initialisation agree. Call :meth:`finish_init` to free the
        fp32 sums (``(C, D)``, kept only during the initial pass).
        """
        features, labels = features.to(self.device), labels.to(self.device)
        if self._init_sums is None:
            self._init_sums = torch.zeros(self.num_ids, self.dim, device=self.device)
        ids, sums, counts = group_sum(features, labels)
        self._init_sums[ids] += sums  # ids unique: no write collisions
        self.counts[ids] += counts
        self.centroids.index_copy_(0, ids, F.normalize(self._init_sums[ids], dim=1).to(self.dtype))

    def finish_init(self) -> None:
        """Drop the fp32 accumulators of :meth:`init_from`."""
        self._init_sums = None

    @torch.no_grad()
    def update(
        self,
        features: torch.Tensor,
        labels: torch.Tensor,
        momentum: float,
        gather_fn: GatherFn = _identity_gather,
    ) -> torch.Tensor:
        """One momentum step from a batch: ``features`` (B, D) momentum features, ``labels`` (B,).

        ``gather_fn`` (identity by default) lets the trainer all-gather features and labels
        across DDP ranks first, so every rank applies the identical update. Labels < 0
        (filtered images) are ignored. Returns the updated ids (U,).
        """
        features, labels = gather_fn(features.detach(), labels)
        features, labels = features.to(self.device), labels.to(self.device)
        ids, sums, counts = group_sum(features, labels)
        mean = sums / counts[:, None]  # (U, D)
        seen = self.counts[ids] > 0
        mu = torch.where(seen, float(momentum), 0.0)[:, None]  # first sight: take the mean
        old = self.centroids.index_select(0, ids).float()  # index_select: fast for fp16 on CPU
        new = F.normalize(mu * old + (1.0 - mu) * mean, dim=1)
        self.centroids.index_copy_(0, ids, new.to(self.dtype))
        self.counts[ids] += counts
        return ids

    @torch.no_grad()
    def merge(self, mapping: torch.Tensor | np.ndarray) -> int:
        """Fold ids into representatives: ``mapping`` (C,) gives each id's new id.

        Every target must map to itself (``mapping[mapping] == mapping``). A representative
        becomes the count-weighted mean of its group (re-normalised) with the summed count;
        merged-away rows are zeroed with count 0. Returns the number of ids merged away.
        """
        mapping = torch.as_tensor(mapping, dtype=torch.long, device=self.device)
        if mapping.shape != (self.num_ids,):
            raise ValueError(f"mapping must have shape ({self.num_ids},), got {mapping.shape}")
        if not torch.equal(mapping[mapping], mapping):
            raise ValueError("mapping must send every id to a representative that maps to itself")
        moved = torch.nonzero(mapping != torch.arange(self.num_ids, device=self.device))[:, 0]
        if len(moved) == 0:
            return 0
        involved = torch.unique(torch.cat([moved, mapping[moved]]))  # (I,)
        weights = self.counts[involved].clamp(min=1).float()
        reps, sums, _ = group_sum(self.centroids.index_select(0, involved), mapping[involved], weights)
        group_counts = torch.zeros_like(self.counts).index_add_(0, mapping[involved], self.counts[involved])[reps]
        self.centroids.index_copy_(0, reps, F.normalize(sums, dim=1).to(self.dtype))
        self.counts[reps] = group_counts
        self.centroids.index_fill_(0, moved, 0)
        self.counts[moved] = 0
        log.info("merged %d ids into %d representatives", len(moved), len(reps))
        return len(moved)

    def state_dict(self) -> dict[str, Any]:
        return {"centroids": self.centroids.clone(), "counts": self.counts.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        centroids, counts = state["centroids"], state["counts"]
        if tuple(centroids.shape) != tuple(self.centroids.shape):
            raise DynamixError(
                f"centroid bank in the checkpoint has shape {tuple(centroids.shape)}, the run "
                f"expects {tuple(self.centroids.shape)}; resume with the same datasets and "
                "model, or start a new run"
            )
        self.centroids.copy_(centroids)
        self.counts.copy_(counts)
        self._init_sums = None
