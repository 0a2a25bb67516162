"""One tiny trained run shared by the inference tests: a real ``dynamix train`` checkpoint.

Two steps of the real trainer on the tiny synthetic world at 64×32 (~15 s on 2 cores),
so the checkpoints carry everything a real run writes (both encoders, params, last_eval).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from dynamix.config import Params, load_params
from dynamix.prepare import prepare_manifests
from dynamix.synth import generate_world
from dynamix.train.trainer import train

TINY = [
    "model.img_height=64", "model.img_width=32", "model.drop_path_rate=0.0",
    "train.iters=2", "train.num_workers=0", "train.eval_every=2", "train.checkpoint_every=2",
    "train.warmup_iters=1", "train.eval_batch_size=32", "train.relabel.enabled=false",
    "train.sampler.p_m=2", "train.sampler.p_s=2", "train.sampler.k=4",
]  # fmt: skip


@dataclass(frozen=True)
class TinyRun:
    world: Path  # the generated raw datasets
    params_file: Path  # repo params.yaml pointed at ``world``
    overrides: list[str]  # TINY + train.out_dir
    out_dir: Path  # last.pt, best.pt, metrics.json

    def params(self, *extra: str) -> Params:
        return load_params(self.params_file, [*self.overrides, *extra])

    @property
    def checkpoint(self) -> Path:
        return self.out_dir / "last.pt"

    def manifest(self, name: str) -> Path:
        return Path(self.params().data.manifests_dir) / f"{name}.parquet"


@pytest.fixture(scope="session")
def tiny_run(world_params, tmp_path_factory) -> TinyRun:
    base = tmp_path_factory.mktemp("infer")
    world = base / "raw"
    generate_world(world, preset="tiny", seed=0, workers=2)
    params_file = world_params(world, base)
    run = TinyRun(world, params_file, [*TINY, f"train.out_dir={base / 'run'}"], base / "run")
    prepare_manifests(run.params())
    train(run.params())
    return run
