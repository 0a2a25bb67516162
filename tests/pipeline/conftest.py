"""Shared by the session: one tiny training run, tracked live into a real MLflow sqlite
store; and one tiny DVC repo (scripts/tiny_pipeline.py) after one real ``dvc repro``."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tiny_pipeline import TINY, TinyRepo, build_repo, repro

# The shared tiny list cut to 4 steps: one relabeling round at step 2; evaluations at 2 and 4;
# every step and two ranked lists per target logged.
TRACKED_TINY = [
    *TINY,
    "train.iters=4",
    "train.eval_every=2",
    "train.checkpoint_every=2",
    "tracking.log_every=1",
    "tracking.ranked_list_queries=2",
]


@dataclass
class TrackedRun:
    params_file: Path
    overrides: list[str]  # TRACKED_TINY + this session's out_dir and store
    run_dir: Path
    run_id: str
    outputs: dict[str, Any]  # what log_training_outputs returned
    base: Path

    def params(self, *extra: str):
        from dynamix.config import load_params

        return load_params(self.params_file, [*self.overrides, *extra])


@pytest.fixture(scope="session")
def tracked_run(world_params, tiny_world, tmp_path_factory) -> TrackedRun:
    """Tiny world → manifests → Trainer with MlflowCallback inside start_pipeline_run."""
    from dynamix.prepare import prepare_manifests
    from dynamix.train.trainer import Trainer
    from flows.tracking import MlflowCallback, log_training_outputs, start_pipeline_run

    base = tmp_path_factory.mktemp("tracked")
    params_file = world_params(tiny_world, base)
    overrides = [
        *TRACKED_TINY,
        f"train.out_dir={base / 'run'}",
        f"tracking.uri=sqlite:///{base / 'store' / 'mlflow.db'}",
    ]
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)  # params decide the store here
        run = TrackedRun(params_file, overrides, base / "run", "", {}, base)
        params = run.params()
        prepare_manifests(params)
        with start_pipeline_run(params, run_name="tiny", tags={"test": "tracked_run"}) as active:
            callback = MlflowCallback(log_every=params.tracking.log_every)
            Trainer(params, callbacks=[callback]).fit()
            run.outputs = log_training_outputs(run.run_dir, params)
            run.run_id = active.info.run_id
        yield run


@dataclass
class ReproducedRepo:
    repo: TinyRepo
    output: str  # what the first `dvc repro` printed
    seconds: float


@pytest.fixture(scope="session")
def tiny_dvc_repo(tmp_path_factory) -> ReproducedRepo:
    """A git + DVC repo with the real dvc.yaml on the tiny world, after one `dvc repro`."""
    start = time.perf_counter()
    repo = build_repo(tmp_path_factory.mktemp("dvc") / "repo", seed=0)
    output = repro(repo)
    return ReproducedRepo(repo, output, time.perf_counter() - start)
