"""Centroid (InfoNCE) loss: online features against the identity centroids.

Each online feature should be closest to its own id's centroid among a set of candidate
centroids, scored by cosine similarity over a temperature τ. A full softmax over 100k+ ids
costs O(B × num_ids) per step, so by default the candidate set is the batch's own ids plus
``num_negatives`` sampled ids shared by the whole batch (Partial-FC style): the hardest of a
random candidate pool by similarity to the batch, and random ones for coverage. The cost is
O(B × k). With ``full_softmax=True`` or ``num_negatives ≥ num_ids`` every id is scored and
the loss is exactly the full softmax.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


@torch.no_grad()
def sample_negatives(
    features: torch.Tensor,
    labels: torch.Tensor,
    centroids: torch.Tensor,
    num_negatives: int,
    hard_fraction: float = 0.5,
    pool_size: int | None = None,
    valid_mask: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Ids (K,) to score as negatives, K ≤ ``num_negatives``, none of them in ``labels``.

    A pool of ``pool_size`` ids (default 4 × ``num_negatives``) is drawn at random (with
    replacement, then de-duplicated: O(pool), never O(num_ids)); the ``hard_fraction`` of
    them most similar to any batch feature are the hard negatives, the rest are a random
    subset of the remaining pool. ``valid_mask`` (C,) excludes ids without a centroid.
    """
    device = centroids.device
    pool_size = pool_size or 4 * num_negatives
    rng_device = generator.device if generator is not None else torch.device("cpu")
    pool = torch.randint(centroids.shape[0], (pool_size,), generator=generator, device=rng_device)
    pool = torch.unique(pool.to(device))
    pool = pool[~torch.isin(pool, labels)]
    if valid_mask is not None:
        pool = pool[valid_mask[pool]]
    num_hard = min(round(num_negatives * hard_fraction), len(pool))
    hard = pool[:0]
    if num_hard > 0:
        with torch.autocast(device_type=device.type, enabled=False):
            scores = (features.float() @ centroids[pool].float().T).amax(0)  # (P,)
        picked = torch.topk(scores, num_hard).indices
        hard = pool[picked]
        rest = torch.ones(len(pool), dtype=torch.bool, device=device)
        rest[picked] = False
        pool = pool[rest]
    order = torch.randperm(len(pool), generator=generator, device=rng_device).to(device)
    return torch.cat([hard, pool[order[: num_negatives - num_hard]]])


class CentroidLoss(nn.Module):
    """Softmax of online features (B, D) over centroids with temperature τ.

    ``forward(features, labels, centroids)`` with ``features`` (B, D) unit-norm online
    embeddings, ``labels`` (B,) ids (< 0: ignored), ``centroids`` (C, D) the bank (any
    dtype; scored in fp32, never receives gradients). Optional ``weights`` (B,) scale each
    sample's term (the trainer's separate multi-/single-camera weights); the result is
    ``sum(w·loss) / #labelled samples``, so all-ones weights give the plain mean.
    Ids in the batch must already have a centroid (initialise the bank first).

    ``id_groups`` (C,) restricts the contrast: a sample whose id has group g ≥ 0 is scored
    only against ids of group g (the trainer's groups are single-camera videos; −1 =
    unrestricted, e.g. multi-camera ids). ``extra_ids`` (E,) are always added to the
    candidate set (the ids of the batch's videos, so a sampled candidate set still holds
    every same-video rival at 100k+ ids).
    """

    def __init__(
        self,
        temperature: float = 0.05,
        num_negatives: int = 4096,
        hard_fraction: float = 0.5,
        pool_size: int | None = None,
        full_softmax: bool = False,
    ) -> None:
        super().__init__()
        self.temperature = temperature
        self.num_negatives = num_negatives
        self.hard_fraction = hard_fraction
        self.pool_size = pool_size
        self.full_softmax = full_softmax

    def forward(
        self,
        features: torch.Tensor,
        labels: torch.Tensor,
        centroids: torch.Tensor,
        weights: torch.Tensor | None = None,
        valid_mask: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        id_groups: torch.Tensor | None = None,
        extra_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        with torch.autocast(device_type=features.device.type, enabled=False):
            return self._loss(
                features.float(),
                labels,
                centroids.detach(),
                weights,
                valid_mask,
                generator,
                id_groups,
                extra_ids,
            )

    def _loss(self, features, labels, centroids, weights, valid_mask, generator, id_groups, extra_ids) -> torch.Tensor:
        # fp32 even under autocast: logits reach 1/τ = 20 where bf16 steps are 0.125.
        labelled = labels >= 0  # (B,)
        safe = labels.clamp(min=0)
        if id_groups is not None:  # unlabelled rows (weight 0) stay unrestricted: no NaN
            id_groups = id_groups.to(labels.device)
            anchor_groups = torch.where(labelled, id_groups[safe], -1)
        if self.full_softmax or self.num_negatives >= centroids.shape[0]:
            logits = features @ centroids.float().T / self.temperature  # (B, C)
            target = safe
            if valid_mask is not None:
                mask = valid_mask[None, :].expand_as(logits).clone()
                mask[torch.arange(len(safe), device=safe.device), safe] = True  # the positive always counts
                logits = logits.masked_fill(~mask, float("-inf"))
            if id_groups is not None:
                logits = _restrict(logits, anchor_groups, id_groups)
        else:
            negatives = sample_negatives(
                features.detach(),
                safe[labelled],
                centroids,
                self.num_negatives,
                self.hard_fraction,
                self.pool_size,
                valid_mask,
                generator,
            )
            extra = negatives[:0] if extra_ids is None else extra_ids.to(negatives.device)
            if valid_mask is not None:
                extra = extra[valid_mask[extra]]
            ids = torch.unique(torch.cat([safe[labelled], negatives, extra]))  # (K,) sorted
            logits = features @ centroids[ids].float().T / self.temperature  # (B, K)
            target = torch.searchsorted(ids, safe).clamp(max=len(ids) - 1)
            if id_groups is not None:
                logits = _restrict(logits, anchor_groups, id_groups[ids])
        per_sample = F.cross_entropy(logits, target, reduction="none")  # (B,)
        w = labelled.float() if weights is None else weights.float() * labelled
        return (w * per_sample).sum() / labelled.sum().clamp(min=1)


def _restrict(logits: torch.Tensor, anchor_groups: torch.Tensor, candidate_groups: torch.Tensor) -> torch.Tensor:
    """Mask (−inf) candidates outside the anchor's group; anchors of group < 0 see all.

    ``logits`` (B, K), ``anchor_groups`` (B,), ``candidate_groups`` (K,). An anchor's own
    id is in its own group, so its target logit always stays.
    """
    a = anchor_groups.to(logits.device)[:, None]
    allowed = (a < 0) | (candidate_groups.to(logits.device)[None, :] == a)
    return logits.masked_fill(~allowed, float("-inf"))
