"""The momentum encoder: an exponential moving average (EMA) of the online model.

Its features feed the centroids, the relabeling decisions and the sampler: they must move
slowly and smoothly while the online encoder takes noisy gradient steps, or the centroid
bank and the pseudo-labels would chase the optimiser's noise. No gradients ever flow here.

Parameters are averaged, ``θ_m ← m·θ_m + (1−m)·θ``; buffers (BatchNorm running statistics)
are copied, since averaging running averages only delays them further. The copy always
stays in eval mode: BN-neck uses the (copied) running statistics and there is no drop-path
noise, so a feature depends only on the image, not on the rest of the batch.
"""

from __future__ import annotations

import copy
import logging

import torch
from torch import nn

log = logging.getLogger(__name__)


def unwrap(model: nn.Module) -> nn.Module:
    """The bare module inside DDP / ``torch.compile`` wrappers (keys must match the copy)."""
    while True:
        if isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


class MomentumEncoder(nn.Module):
    """EMA copy of a model, updated once per step with :meth:`update`.

    ``decay`` is the momentum m (≈0.999): 0 makes the copy equal the student exactly, 1
    freezes it. During the first ``warmup_steps`` steps the decay ramps linearly from 0 to
    ``decay`` so the copy does not cling to the random initialisation.
    ``state_dict``/``load_state_dict`` (from :class:`nn.Module`) hold the copy's weights
    and the step count, which is all a resume needs.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999, warmup_steps: int = 0) -> None:
        super().__init__()
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"momentum decay must be in [0, 1], got {decay}")
        self.decay = float(decay)
        self.warmup_steps = int(warmup_steps)
        self.module = copy.deepcopy(unwrap(model))
        self.module.requires_grad_(False)
        self.module.eval()
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))

    def decay_at(self, step: int | None) -> float:
        """Decay used at ``step`` (the constant decay when ``step`` is None)."""
        if step is None or self.warmup_steps <= 0 or step >= self.warmup_steps:
            return self.decay
        return self.decay * max(step, 0) / self.warmup_steps

    @torch.no_grad()
    def update(self, model: nn.Module, step: int | None = None) -> float:
        """Move the copy towards ``model``; returns the decay that was used."""
        decay = self.decay_at(step)
        student = unwrap(model)
        ema_params = dict(self.module.named_parameters())
        pairs = [(ema_params[name], p.detach()) for name, p in student.named_parameters()]
        ema_values = [e for e, _ in pairs]
        new_values = [s.to(dtype=e.dtype, device=e.device) for e, s in pairs]
        if decay == 0.0:
            torch._foreach_copy_(ema_values, new_values)
        elif decay < 1.0:
            # lerp with weight ≥ 0.5 computes end − (end − start)·(1 − w): exact at w = 1.
            torch._foreach_lerp_(ema_values, new_values, 1.0 - decay)
        ema_buffers = dict(self.module.named_buffers())
        for name, b in student.named_buffers():
            if name in ema_buffers:
                ema_buffers[name].copy_(b)
        self.num_updates += 1
        return decay

    def train(self, mode: bool = True) -> MomentumEncoder:
        """Keep the copy in eval mode whatever the trainer asks (see module docstring)."""
        super().train(mode)
        self.module.eval()
        return self

    @torch.no_grad()
    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)
