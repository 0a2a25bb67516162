"""Learning rate as a pure function of the iteration: linear warm-up, then cosine decay.

A function of the step (rather than a stateful scheduler object) makes resume trivial:
the checkpoint's iteration is the whole schedule state.
"""

from __future__ import annotations

import math


def lr_at(step: int, *, base_lr: float, warmup: int, total: int, min_ratio: float) -> float:
    """Learning rate for ``step`` (0-based) of ``total`` steps.

    Steps ``0 .. warmup-1`` rise linearly to ``base_lr`` (step 0 gets ``base_lr/warmup``,
    never 0); the remaining steps follow a half cosine from ``base_lr`` down to
    ``base_lr * min_ratio`` at the last step.
    """
    if warmup > 0 and step < warmup:
        return base_lr * (step + 1) / warmup
    span = max(total - warmup - 1, 1)
    progress = min(max(step - warmup, 0) / span, 1.0)
    floor = base_lr * min_ratio
    return floor + 0.5 * (base_lr - floor) * (1.0 + math.cos(math.pi * progress))
