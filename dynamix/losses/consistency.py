"""Consistency between two augmented views: online features of view 2 vs momentum of view 1.

Default ``kind="cosine"``: ``1 − cos(online₂, momentum₁)``. Chosen because it is defined
from the very first step (it needs no centroid bank, so no id has to be initialised and
filtered images still contribute), has no temperature to tune, costs O(B·D), and acts in
the same cosine geometry used for retrieval; collapse is not a risk since the centroid and
triplet losses keep identities apart and the target is the slow momentum encoder.

``kind="kl"``: KL divergence between the two views' similarity distributions over a set of
centroids (``KL(p_momentum ‖ p_online)``, temperature τ). It transfers the momentum
encoder's relational "which ids does this look like" knowledge, which is softer than
matching points; kept as an ablation option (it needs the centroids the loss scores).
"""

from __future__ import annotations

import typing

import torch
import torch.nn.functional as F
from torch import nn

from dynamix.config import ConsistencyKind

KINDS = typing.get_args(ConsistencyKind)  # checked when params.yaml is loaded


class ConsistencyLoss(nn.Module):
    """``forward(online (B, D), momentum (B, D), centroids (K, D) | None, weights (B,) | None)``.

    The momentum features are detached: only the online encoder learns from this term.
    ``weights`` scale each sample; the result is ``mean(w · loss)``.
    """

    def __init__(self, kind: ConsistencyKind = "cosine", temperature: float = 0.05) -> None:
        super().__init__()
        assert kind in KINDS, kind
        self.kind = kind
        self.temperature = temperature

    def forward(
        self,
        online: torch.Tensor,
        momentum: torch.Tensor,
        centroids: torch.Tensor | None = None,
        weights: torch.Tensor | None = None,
    ) -> torch.Tensor:
        with torch.autocast(device_type=online.device.type, enabled=False):
            online = F.normalize(online.float(), dim=1)  # (B, D)
            target = F.normalize(momentum.detach().float(), dim=1)  # (B, D)
            if self.kind == "cosine":
                per_sample = 1.0 - (online * target).sum(1)  # (B,)
            else:
                if centroids is None:
                    raise ValueError("consistency kind 'kl' needs the centroids to score against")
                c = centroids.detach().float().T / self.temperature  # (D, K)
                log_p_online = F.log_softmax(online @ c, dim=1)  # (B, K)
                log_p_target = F.log_softmax(target @ c, dim=1)  # (B, K)
                per_sample = (log_p_target.exp() * (log_p_target - log_p_online)).sum(1)
            if weights is not None:
                per_sample = per_sample * weights.float()
            return per_sample.mean()
