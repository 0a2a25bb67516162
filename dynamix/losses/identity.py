"""ID cross-entropy on the labelled multi-camera ids: a cosine classifier.

The centroid loss pulls features towards centroids that the momentum encoder computed,
so its targets are only as good as the encoder already is; from a weak start (no
pretrained weights, as on the synthetic world) that bootstraps slowly. A classifier whose
weights are learned by gradient descent gives the encoder a direct, fast signal from
the trusted labels. It covers only the multi-camera ids (hundreds to a few thousand), so
its cost stays small and the 100k+ single-camera ids remain the centroid module's job.

Weights and features are both L2-normalised, so the logits are cosine similarities over a
temperature, the same geometry as retrieval and the centroid loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class IdentityClassifierLoss(nn.Module):
    """``forward(features (B, D) unit-norm, classes (B,)) -> scalar``.

    ``classes`` are rows of the classifier (< 0: not a multi-camera id, left out); the
    loss is the mean cross-entropy over the remaining samples (0 if none).
    """

    def __init__(self, dim: int, num_classes: int, temperature: float = 0.05, label_smoothing: float = 0.1) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(num_classes, dim) * dim**-0.5)  # (C, D)
        self.temperature = temperature
        self.label_smoothing = label_smoothing

    def forward(self, features: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        keep = classes >= 0
        if not bool(keep.any()):
            return features.sum() * 0.0  # keeps the graph; no signal from this batch
        with torch.autocast(device_type=features.device.type, enabled=False):
            logits = features[keep].float() @ F.normalize(self.weight.float(), dim=1).T
            return F.cross_entropy(logits / self.temperature, classes[keep], label_smoothing=self.label_smoothing)
