"""One tiny trained run shared by the inference tests: a real ``dynamix train`` checkpoint.

Two steps of the real trainer on the tiny synthetic world at 64×32 (~15 s on 2 cores),
so the checkpoints carry everything a real run writes (both encoders, params, last_eval).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import tiny_pipeline

from dynamix.config import Params, load_params
from dynamix.data.manifest import manifest_path
from dynamix.prepare import prepare_manifests
from dynamix.train.trainer import train

# The shared tiny list, cut to two steps with relabeling off: a checkpoint is all we need.
TINY = [
    *tiny_pipeline.TINY,
    "train.iters=2",
    "train.eval_every=2",
    "train.checkpoint_every=2",
    "train.warmup_iters=1",
    "train.eval_batch_size=32",
    "train.relabel.enabled=false",
]


@dataclass(frozen=True)
class TinyRun:
    world: Path  # the session's tiny world (read-only)
    params_file: Path  # repo params.yaml pointed at ``world``
    overrides: list[str]  # TINY + train.out_dir
    out_dir: Path  # last.pt, best.pt, metrics.json

    def params(self, *extra: str) -> Params:
        return load_params(self.params_file, [*self.overrides, *extra])

    @property
    def checkpoint(self) -> Path:
        return self.out_dir / "last.pt"

    def manifest(self, name: str) -> Path:
        return manifest_path(self.params(), name)


@pytest.fixture(scope="session")
def tiny_run(world_params, tiny_world, tmp_path_factory) -> TinyRun:
    base = tmp_path_factory.mktemp("infer")
    params_file = world_params(tiny_world, base)
    overrides = [*TINY, f"train.out_dir={base / 'run'}"]
    run = TinyRun(tiny_world, params_file, overrides, base / "run")
    prepare_manifests(run.params())
    train(run.params())
    return run
