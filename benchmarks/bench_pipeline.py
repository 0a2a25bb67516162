"""Pipeline overhead: the Prefect + MLflow + GX flow against the trainer called directly.

Both arms run the same params on the same synthetic world (same seed, same steps):

- **direct**: ``prepare_manifests`` then ``Trainer(params).fit()`` (what ``dynamix
  prepare && dynamix train`` do; the trainer's own final evaluation included);
- **wrapped**: ``flows.pipeline.pipeline_flow`` on a running Prefect server (the test
  harness's, started before the clock), with MLflow on a temporary sqlite store: DVC data
  resolution, manifests, the Great Expectations gate, the same training with the MLflow
  callback, evaluation of ``best.pt``, logging checkpoints and the model, promotion.

On the tiny world each arm runs at two training lengths, which splits the overhead into
a fixed part per flow run (gate, model logging, re-evaluation, registry) and a part per
training step (MLflow metric logging): ``wrapped(n) − direct(n) = fixed + per_step · n``.
The full mode then runs the README demo itself (``params.yaml`` unchanged on a fresh
``default`` world) as ``DEMO_PAIRS`` interleaved pairs of a first flow run and a direct
run; the median per-pair overhead is the headline number against the 5 % target.

Single runs on a 2-core machine differ by more than that target, so each flow run is
also taken apart: the wall seconds of every task but ``train`` (the flow's own steps) and
the CPU seconds the Prefect server process spent meanwhile (its API calls and background
services, which take cores from training on a saturated machine). The same server's CPU
during the direct run is the control: what it spends with no flow running.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
from bench_train import params_for_world, world_params
from common import Measurement, benchmark, peak_rss_gib, reset_peak_rss

TARGET = 0.05
# Interleaved demo pairs (about 12 min each on 2 cores). On an idle machine one pair's
# overhead still ranges from -1 % to +11 % (the same training takes ±3 % CPU seconds from
# run to run), so a median needs several; even, so each arm goes first equally often.
DEMO_PAIRS = 6
# A short ViT-Tiny run on the synthetic world's 128×64 crops; relabeling off (its extra
# feature pass is the same in both arms); one evaluation and one checkpoint at the end.
COMMON = [
    "model.drop_path_rate=0.0",
    "train.num_workers=0",
    "train.warmup_iters=2",
    "train.relabel.enabled=false",
    "train.sampler.p_m=4",
    "train.sampler.p_s=4",
    "train.sampler.k=4",
    "tracking.ranked_list_queries=0",
]
QUICK = ["model.img_height=64", "model.img_width=32", "train.eval_batch_size=64"]


def overrides(iters: int, quick: bool) -> list[str]:
    return [
        *COMMON,
        *(QUICK if quick else []),
        f"train.iters={iters}",
        f"train.eval_every={iters}",
        f"train.checkpoint_every={iters}",
    ]


def direct(params_path: Path, sets: list[str]) -> float:
    from dynamix.config import load_params
    from dynamix.prepare import prepare_manifests
    from dynamix.train.trainer import Trainer

    start = time.perf_counter()
    params = load_params(params_path, sets)
    prepare_manifests(params)
    Trainer(params).fit()
    return time.perf_counter() - start


def wrapped(params_path: Path, sets: list[str], iters: int, gate_reuse: bool = False) -> tuple[float, dict[str, float]]:
    """One flow run: its seconds and its seconds per task. Unless ``gate_reuse``, the
    data gate's last pass is forgotten first (a first run on new data: every image is
    opened)."""
    from dynamix.config import load_params
    from flows import gate_record
    from flows.pipeline import pipeline_flow

    if not gate_reuse:
        gate_record.record_path(load_params(params_path, sets)).unlink(missing_ok=True)
    start = time.perf_counter()
    state = pipeline_flow(params_path=str(params_path), overrides=sets, return_state=True)
    seconds = time.perf_counter() - start
    if not state.is_completed() or state.result()["train"]["step"] != iters:
        raise RuntimeError(f"pipeline flow did not complete: {state.name} {state.message}")
    return seconds, task_seconds(state.state_details.flow_run_id, seconds)


def task_seconds(flow_run_id: Any, total: float) -> dict[str, float]:
    """Wall seconds of each task run of the flow run, from the Prefect API."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    out = {
        r.name.rsplit("-", 1)[0]: round((r.end_time - r.start_time).total_seconds(), 2)
        for r in runs
        if r.start_time and r.end_time
    }
    out["outside tasks"] = round(total - sum(out.values()), 2)
    return out


class ServerCpu:
    """CPU seconds of the processes the Prefect test harness started (its API server),
    taken as this process's children when the harness is up and nothing else runs."""

    def __init__(self) -> None:
        self.procs = psutil.Process().children(recursive=True)

    def seconds(self) -> float:
        total = 0.0
        for proc in self.procs:
            try:
                times = proc.cpu_times()
            except psutil.Error:  # gone: it adds nothing more
                continue
            total += times.user + times.system + times.children_user + times.children_system
        return total


def row(tag: str, steps: int, direct_s: float, wrapped_s: float) -> dict[str, Any]:
    extra = wrapped_s - direct_s
    print(f"  {tag}: direct {direct_s:.1f}s, wrapped {wrapped_s:.1f}s", flush=True)
    return {
        "run": tag,
        "steps": steps,
        "direct_s": round(direct_s, 2),
        "wrapped_s": round(wrapped_s, 2),
        "overhead_s": round(extra, 2),
        "overhead": f"{extra / direct_s:.1%}",
    }


def arm_overrides(root: Path, arm: str, tag: str, sets: list[str]) -> list[str]:
    """``sets`` plus the arm's own out_dir and MLflow store."""
    out = root / f"{arm}-{tag}"
    return [*sets, f"train.out_dir={out}", f"tracking.uri=sqlite:///{out / 'mlflow.db'}"]


def measure_pair(
    params_path: Path, root: Path, tag: str, sets: list[str], steps: int, wrapped_first: bool
) -> dict[str, Any]:
    """Both arms once on the same params (``sets`` + each arm's own out_dir and store)."""
    times = {}
    for arm in ("wrapped", "direct") if wrapped_first else ("direct", "wrapped"):
        arm_sets = arm_overrides(root, arm, tag, sets)
        if arm == "wrapped":
            times[arm] = wrapped(params_path, arm_sets, steps)[0]
        else:
            times[arm] = direct(params_path, arm_sets)
    return row(tag, steps, times["direct"], times["wrapped"])


Rows = list[dict[str, Any]]


def measure_demo(
    params_path: Path, root: Path, sets: list[str], steps: int, pairs: int, server: ServerCpu
) -> tuple[Rows, list[dict[str, float]], dict[str, Any]]:
    """The demo, ``pairs`` times: a flow run and a direct run on the same params (``sets``
    plus each arm's own out_dir and store), the order alternating from pair to pair
    (wrapped first, then direct first, ...) so slow drift of the machine falls on both
    arms alike. Every flow run is a first run: a new MLflow store, the gate's last pass
    forgotten (every image opened). The headline is the median of the per-pair
    overheads: single runs on this machine differ by more than the 5 % target (see
    ``direct_spread``). Also returns each flow run's seconds per task and a summary,
    which includes the server's CPU seconds during each arm and what the gate costs on a
    later run over the same data (its recorded pass reused), timed on its own."""
    from statistics import median

    from dynamix.config import load_params
    from flows.validation import validate_data

    rows: list[dict[str, Any]] = []
    tasks: list[dict[str, float]] = []
    for i in range(pairs):
        tag = f"demo-{i + 1}"
        wrapped_sets = arm_overrides(root, "wrapped", tag, sets)
        order = ("wrapped", "direct") if i % 2 == 0 else ("direct", "wrapped")
        for arm in order:
            cpu_before = server.seconds()
            if arm == "wrapped":
                wrapped_s, seconds_per_task = wrapped(params_path, wrapped_sets, steps)
                wrapped_cpu = server.seconds() - cpu_before
            else:
                direct_s = direct(params_path, arm_overrides(root, "direct", tag, sets))
                direct_cpu = server.seconds() - cpu_before
        tasks.append(seconds_per_task)
        rows.append(
            {
                **row(f"demo, pair {i + 1} ({order[0]} first)", steps, direct_s, wrapped_s),
                "flow_own_s": round(sum(v for k, v in seconds_per_task.items() if k != "train"), 2),
                "train_task_s": seconds_per_task["train"],
                "server_cpu_wrapped_s": round(wrapped_cpu, 2),
                "server_cpu_direct_s": round(direct_cpu, 2),
            }
        )
    start = time.perf_counter()
    validate_data(load_params(params_path, wrapped_sets), reuse=True)
    gate_reused_s = time.perf_counter() - start
    directs = [r["direct_s"] for r in rows]
    fractions = [r["overhead_s"] / r["direct_s"] for r in rows]
    own = [r["flow_own_s"] for r in rows]
    # what the flow adds, taken apart: its own steps + the server's extra CPU spread over
    # the cores (on a machine that training saturates, that much wall time is lost to it)
    extra_cpu = [r["server_cpu_wrapped_s"] - r["server_cpu_direct_s"] for r in rows]
    cores = os.cpu_count() or 1
    accounted = [(o + c / cores) / d for o, c, d in zip(own, extra_cpu, directs, strict=True)]
    summary = {
        "pairs": pairs,
        "median_wrapped_s": round(median(r["wrapped_s"] for r in rows), 2),
        "median_direct_s": round(median(directs), 2),
        "median_overhead": f"{median(fractions):.1%}",
        "median_overhead_fraction": round(median(fractions), 4),
        "pair_overheads": [r["overhead"] for r in rows],
        "direct_spread": f"{(max(directs) - min(directs)) / min(directs):.1%}",
        "median_flow_own_steps_s": round(median(own), 2),
        "median_flow_own_steps": f"{median(o / d for o, d in zip(own, directs, strict=True)):.1%}",
        "median_train_task_s": round(median(r["train_task_s"] for r in rows), 2),
        "median_server_cpu_wrapped_s": round(median(r["server_cpu_wrapped_s"] for r in rows), 2),
        "median_server_cpu_direct_s": round(median(r["server_cpu_direct_s"] for r in rows), 2),
        "median_accounted_overhead": f"{median(accounted):.1%}",
        "median_accounted_overhead_fraction": round(median(accounted), 4),
        "gate_full_s": round(median(t["validate-data"] for t in tasks), 2),
        "gate_reused_s": round(gate_reused_s, 2),
    }
    return rows, tasks, summary


def demo_world_params(root: Path) -> Path:
    """The repo's params.yaml on a fresh ``default`` world (what the README demo trains)."""
    from dynamix.synth import generate_world

    world = generate_world(root / "default-raw", preset="default", seed=0)
    return params_for_world(world, root / "default")


@benchmark("pipeline_overhead", "Prefect + MLflow + GX pipeline flow vs the trainer called directly")
def pipeline_overhead(quick: bool) -> Measurement:
    """Tiny world at two lengths (the fixed / per-step split), then the interleaved pairs:
    the demo recipe itself in full mode (params.yaml unchanged on the default world), two
    short tiny pairs in quick mode (the same code path, in seconds)."""
    from prefect.testing.utilities import prefect_test_harness

    from dynamix.config import load_params

    os.environ.pop("MLFLOW_TRACKING_URI", None)  # the params' temporary store, not a server
    lengths = (2, 6) if quick else (20, 300)
    rows: Rows = []
    with tempfile.TemporaryDirectory() as tmp, prefect_test_harness():
        root = Path(tmp)
        params_path = world_params(root)
        if quick:
            demo_params, demo_sets, pairs = params_path, overrides(lengths[-1], quick), 2
        else:
            demo_params, demo_sets, pairs = demo_world_params(root), [], DEMO_PAIRS
        server = ServerCpu()  # before any run starts a DataLoader worker
        reset_peak_rss()
        for i, n in enumerate(lengths):
            sets = overrides(n, quick)
            rows.append(measure_pair(params_path, root, f"tiny-{n}", sets, n, i % 2 == 1))
        iters = load_params(demo_params, demo_sets).train.iters
        demo_rows, demo_tasks, demo = measure_demo(demo_params, root, demo_sets, iters, pairs, server)
        rows += demo_rows
        peak = peak_rss_gib()
    (n1, r1), (n2, r2) = ((r["steps"], r) for r in rows[:2])
    per_step = (r2["overhead_s"] - r1["overhead_s"]) / (n2 - n1)
    fixed = r1["overhead_s"] - per_step * n1
    step_s = (r2["direct_s"] - r1["direct_s"]) / (n2 - n1)
    # overhead fixed + per_step·n within TARGET of direct ≈ base + step_s·n
    base = r1["direct_s"] - step_s * n1
    slack = TARGET * step_s - per_step
    break_even = (fixed - TARGET * base) / slack if slack > 0 else None
    fraction = demo["median_overhead_fraction"]
    world = "tiny world, 4 + 4 ids" if quick else "demo recipe, default world"
    params = {
        "sizes": f"{world}, {pairs} pairs of {iters} steps",
        "model": "ViT-Tiny/16, 64×32" if quick else "ViT-Tiny/16, 128×64",
        "seconds_is": f"median wrapped pipeline flow over the pairs ({world}, {iters} steps); "
        "baseline: median of the direct runs",
        "overhead": demo["median_overhead"],
        "demo": demo,
        "fixed_overhead_s": round(fixed, 2),
        "per_step_overhead_s": round(per_step, 4),
        "direct_step_s": round(step_s, 4),
        "tiny_steps_for_5pct": None if break_even is None else max(0, round(break_even)),
        "target": "median per-pair overhead <= 5 % of the direct run",
        "target_met": bool(fraction <= TARGET),
        "baseline": "prepare_manifests + Trainer(params).fit() in the same process",
        "rows_title": "both arms per run; overhead = wrapped − direct (tiny: 4 + 4 ids × 4 "
        "images, no relabeling; demo: params.yaml as is; in each pair the flow run is a "
        "first run, with its own MLflow store and a full gate; the order alternates)",
        "rows": rows,
        "demo_task_seconds": demo_tasks,
    }
    return Measurement(demo["median_wrapped_s"], peak, demo["median_direct_s"], params)
