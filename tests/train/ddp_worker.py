"""One rank of the DDP test: ``dynamix train`` under torchrun, plus a dump of its state.

Run as ``python -m torch.distributed.run --nproc_per_node=2 ddp_worker.py DUMP_DIR
train --params ...``: the CLI builds a :class:`RecordingTrainer` (patched in below), which
remembers the image indices this rank trained on and, after ``fit``, writes the rank's
bank, labels, weights and indices to ``DUMP_DIR/rank<r>.pt`` for the test to compare.
``DDP_WORKER_KILL_AT=n`` makes rank 0 crash during step n (the resume test).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import torch

import dynamix.train.trainer as trainer_module
from dynamix.cli import main

DUMP_DIR = Path(sys.argv[1])
KILL_AT = int(os.environ.get("DDP_WORKER_KILL_AT", "0"))  # 0 = never


class RecordingTrainer(trainer_module.Trainer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seen: list[torch.Tensor] = []

    def train_step(self, view1, view2, index):
        if self.is_main and self.step + 1 == KILL_AT:  # a crash of rank 0 during that step
            raise RuntimeError(f"killed at step {KILL_AT}")
        self.seen.append(index.clone())
        return super().train_step(view1, view2, index)

    def fit(self) -> dict[str, Any]:
        summary = super().fit()
        dump = {
            "bank": self.bank.state_dict(),
            "labels": torch.from_numpy(self.labels.copy()),
            "seen": torch.stack(self.seen) if self.seen else torch.zeros(0, dtype=torch.long),
            "model": self.model.state_dict(),
            "momentum": self.momentum.state_dict(),
            "relabel_rounds": self.relabel_rounds,
            "world_size": self.world_size,
            "summary": summary,
        }
        DUMP_DIR.mkdir(parents=True, exist_ok=True)
        torch.save(dump, DUMP_DIR / f"rank{self.rank}.pt")
        return summary


trainer_module.Trainer = RecordingTrainer  # the CLI imports it at call time

if __name__ == "__main__":
    sys.exit(main(sys.argv[2:]))
