"""Pipeline overhead: the Prefect + MLflow + GX flow against the trainer called directly.

Both arms run the same params on the same tiny synthetic world (same seed, same steps):

- **direct**: ``prepare_manifests`` then ``Trainer(params).fit()`` (what ``dynamix
  prepare && dynamix train`` do; the trainer's own final evaluation included);
- **wrapped**: ``flows.pipeline.pipeline_flow`` on a running Prefect server (the test
  harness's, started before the clock), with MLflow on a temporary sqlite store: DVC data
  resolution, manifests, the Great Expectations gate, the same training with the MLflow
  callback, evaluation of ``best.pt``, logging checkpoints and the model, promotion.

Each arm runs at two training lengths, which splits the overhead into a fixed part per
flow run (gate, model logging, re-evaluation, registry) and a part per training step
(MLflow metric logging): ``wrapped(n) − direct(n) = fixed + per_step · n``. From these we
give the training length above which the overhead stays within the 5 % target.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_train import world_params
from common import Measurement, benchmark, peak_rss_gib, reset_peak_rss

TARGET = 0.05
# A short ViT-Tiny run on the synthetic world's 128×64 crops; relabeling off (its extra
# feature pass is the same in both arms); one evaluation and one checkpoint at the end.
COMMON = [
    "model.drop_path_rate=0.0", "train.num_workers=0", "train.warmup_iters=2",
    "train.relabel.enabled=false", "train.sampler.p_m=4", "train.sampler.p_s=4",
    "train.sampler.k=4", "tracking.ranked_list_queries=0",
]  # fmt: skip
QUICK = ["model.img_height=64", "model.img_width=32", "train.eval_batch_size=64"]


def overrides(out: Path, tag: str, iters: int, quick: bool) -> list[str]:
    return [
        *COMMON, *(QUICK if quick else []),
        f"train.iters={iters}", f"train.eval_every={iters}", f"train.checkpoint_every={iters}",
        f"train.out_dir={out / tag}", f"tracking.uri=sqlite:///{out / tag / 'mlflow.db'}",
    ]  # fmt: skip


def direct(params_path: Path, sets: list[str]) -> float:
    from dynamix.config import load_params
    from dynamix.prepare import prepare_manifests
    from dynamix.train.trainer import Trainer

    start = time.perf_counter()
    params = load_params(params_path, sets)
    prepare_manifests(params)
    Trainer(params).fit()
    return time.perf_counter() - start


def wrapped(params_path: Path, sets: list[str], iters: int) -> float:
    from flows.pipeline import pipeline_flow

    start = time.perf_counter()
    state = pipeline_flow(params_path=str(params_path), overrides=sets, return_state=True)
    seconds = time.perf_counter() - start
    if not state.is_completed() or state.result()["train"]["step"] != iters:
        raise RuntimeError(f"pipeline flow did not complete: {state.name} {state.message}")
    return seconds


@benchmark(
    "pipeline_overhead", "Prefect + MLflow + GX pipeline flow vs the trainer called directly"
)
def pipeline_overhead(quick: bool) -> Measurement:
    from prefect.testing.utilities import prefect_test_harness

    os.environ.pop("MLFLOW_TRACKING_URI", None)  # the params' temporary store, not a server
    lengths = (2, 6) if quick else (20, 80)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp, prefect_test_harness():
        root = Path(tmp)
        params_path = world_params(root)
        reset_peak_rss()
        for i, n in enumerate(lengths):
            arms = {
                "direct": lambda n=n: direct(params_path, overrides(root, f"d{n}", n, quick)),
                "wrapped": lambda n=n: wrapped(params_path, overrides(root, f"w{n}", n, quick), n),
            }
            order = ("direct", "wrapped") if i % 2 == 0 else ("wrapped", "direct")
            times = {name: arms[name]() for name in order}
            extra = times["wrapped"] - times["direct"]
            rows.append({
                "steps": n, "direct_s": round(times["direct"], 2),
                "wrapped_s": round(times["wrapped"], 2), "overhead_s": round(extra, 2),
                "overhead": f"{extra / times['direct']:.1%}",
            })  # fmt: skip
        peak = peak_rss_gib()
    (n1, r1), (n2, r2) = ((r["steps"], r) for r in rows)
    per_step = (r2["overhead_s"] - r1["overhead_s"]) / (n2 - n1)
    fixed = r1["overhead_s"] - per_step * n1
    step_s = (r2["direct_s"] - r1["direct_s"]) / (n2 - n1)
    # overhead fixed + per_step·n within TARGET of direct ≈ base + step_s·n
    base = r1["direct_s"] - step_s * n1
    slack = TARGET * step_s - per_step
    break_even = (fixed - TARGET * base) / slack if slack > 0 else None
    head = rows[-1]
    params = {
        "sizes": f"tiny world, {n1} and {n2} steps",
        "model": "ViT-Tiny/16, 64×32" if quick else "ViT-Tiny/16, 128×64",
        "batch": "4 + 4 ids × 4 images",
        "seconds_is": f"wrapped pipeline flow at {n2} steps (baseline: the trainer directly)",
        "overhead_at_longest": head["overhead"],
        "fixed_overhead_s": round(fixed, 2),
        "per_step_overhead_s": round(per_step, 4),
        "direct_step_s": round(step_s, 4),
        "steps_for_5pct": None if break_even is None else max(0, round(break_even)),
        "hours_for_5pct_at_this_step_time": None
        if break_even is None
        else round(max(0.0, break_even) * step_s / 3600, 2),
        "target": "overhead <= 5 % of the direct run",
        "target_met_at_longest": bool(head["overhead_s"] <= TARGET * head["direct_s"]),
        "baseline": "prepare_manifests + Trainer(params).fit() in the same process",
        "rows_title": "both arms per training length; overhead = wrapped − direct",
        "rows": rows,
    }
    return Measurement(head["wrapped_s"], peak, head["direct_s"], params)
