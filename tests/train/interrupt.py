"""A callback that stops training at a chosen step, as a crash would (kill-and-resume tests)."""

from __future__ import annotations

from dynamix.train.callbacks import Callback


class Kill(Exception):
    pass


class KillAt(Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_step(self, step, metrics):
        if step == self.step:
            raise Kill
