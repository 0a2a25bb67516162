"""Batch-hard triplet loss on cosine distance.

For every anchor, the farthest same-id sample and the nearest other-id sample in the batch
(Hermans et al., "In Defense of the Triplet Loss"); cosine distance ``1 − cos`` because the
embedding space is compared by cosine everywhere else. With ``groups`` (e.g. 0 =
multi-camera, 1 = single-camera) positives and negatives are mined only within the
anchor's own group: single-camera pseudo-ids carry no cross-camera variation and may be
the same person as a multi-camera id, so mixing the two would teach wrong distances.

``cross_negatives`` (B,) bool opens one direction on purpose: those samples (the batch's
single-camera images) are also negatives for anchors of group 0 (multi-camera). A street
video's pseudo-id and a labelled source's id are different people by construction, so the
pair is a safe negative, and it is where the matched sampler's choice reaches the loss:
single-camera ids picked to look like the batch's multi-camera ids become its hardest
negatives. They never serve as positives, and single-camera anchors still mine only
inside their own group.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class TripletLoss(nn.Module):
    """``forward(features (B, D), labels (B,), groups (B,) | None, cross_negatives (B,) | None) -> scalar``.

    ``margin`` > 0: hinge ``max(0, d_ap − d_an + margin)``; ``margin=None``: soft margin
    ``softplus(d_ap − d_an)``. Anchors without a valid positive or negative (or with label
    < 0) are left out; the loss is the mean over the remaining anchors (0 if none).
    """

    def __init__(self, margin: float | None = 0.3) -> None:
        super().__init__()
        self.margin = margin

    def forward(
        self,
        features: torch.Tensor,
        labels: torch.Tensor,
        groups: torch.Tensor | None = None,
        cross_negatives: torch.Tensor | None = None,
    ) -> torch.Tensor:
        with torch.autocast(device_type=features.device.type, enabled=False):
            feats = F.normalize(features.float(), dim=1)
            dist = 1.0 - feats @ feats.T  # (B, B) cosine distance
        same_id = labels[:, None] == labels[None, :]  # (B, B)
        valid_pair = (labels[:, None] >= 0) & (labels[None, :] >= 0)
        usable = valid_pair
        if groups is not None:
            usable = usable & (groups[:, None] == groups[None, :])
        eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
        pos = same_id & usable & ~eye
        neg = ~same_id & usable
        if cross_negatives is not None and groups is not None:
            neg |= ~same_id & valid_pair & (groups[:, None] == 0) & cross_negatives[None, :]
        d_ap = dist.masked_fill(~pos, float("-inf")).amax(1)  # (B,) hardest positive
        d_an = dist.masked_fill(~neg, float("inf")).amin(1)  # (B,) hardest negative
        valid = pos.any(1) & neg.any(1)
        if not valid.any():
            return features.sum() * 0.0  # keeps the graph: a zero loss with zero gradients
        diff = d_ap[valid] - d_an[valid]
        if self.margin is None:
            return F.softplus(diff).mean()
        return F.relu(diff + self.margin).mean()
