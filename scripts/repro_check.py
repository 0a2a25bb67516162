"""CI reproducibility job: the tiny pipeline twice with one seed, then against a reference.

    python scripts/repro_check.py [--seed 0] [--reference reference/tiny_metrics.json]
                                  [--workdir DIR] [--jobs 2] [--update-reference]
                                  [--reuse REPO [--reuse REPO]]

1. **Rerun.** Two fresh tiny repos (``scripts/tiny_pipeline.py``: the real ``dvc.yaml``,
   a tiny synthetic world, the pinned tiny recipe), the same seed, the real ``dvc repro`` in
   each (side by side, one CPU thread each). Their relabeling statistics (every ``relabel``
   event of ``runs/train/log.jsonl``, wall-clock ``seconds`` dropped) and target metrics
   (``metrics/train.json``) must agree within :data:`RERUN_TOL`.
2. **Reference.** ``metrics/train.json`` of the first run against the committed reference:
   the reference is committed in the tiny repo's git, the new metrics written back, and the
   real ``dvc metrics diff HEAD --md`` printed; every gated metric (:data:`REFERENCE_TOL`)
   that moved by more than its tolerance is named on stderr and the job exits 1.

``--update-reference`` runs step 1 and, if it passes, writes the new reference (commit it
with a message saying why the numbers moved). ``--reuse`` checks finished tiny repos instead
of running new ones (tests; two of them for step 1). Exit status: 0 pass, 1 failure.

Tolerances. On CPU with ``num_workers=0`` a rerun is bit-identical (observed: no difference
in any value, also between 1 and 2 torch threads), so :data:`RERUN_TOL` is 1e-6 absolute:
room for last-bit noise only, while the smallest real change is far larger (one query of
~25 moves a rank by 0.04, one image moves mAP by ~1e-3). Another machine (another CPU's
vector kernels) may round differently, and six training steps with thresholded relabeling
can amplify that, so the reference allows one flipped query per target on ranks (0.05),
0.02 on mAP/mINP and label quality, and nothing on the run's structure (steps, rounds, image
and query counts). ``best_step`` and strings are shown but not gated.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import math
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from tiny_pipeline import GIT_ID, REPO, TinyRepo, build_repo, repro, sh

REFERENCE = REPO / "reference" / "tiny_metrics.json"
METRICS = "metrics/train.json"
RERUN_TOL = 1e-6
TIMING_KEYS = {"seconds", "judge_seconds"}  # wall clock in relabel events: never reproducible
REFERENCE_TOL: list[tuple[str, float]] = [  # (fnmatch pattern on the dotted key, abs tol)
    ("targets.*.rank*", 0.05),
    ("targets.*.mAP", 0.02),
    ("targets.*.mINP", 0.02),
    ("targets.*.num_valid_query", 0.0),
    ("mean_mAP", 0.02),
    ("best_selection_score", 0.02),
    ("selection.*.rank*", 0.05),
    ("selection.*.mAP", 0.02),
    ("selection.*.mINP", 0.02),
    ("selection.*.num_valid_query", 0.0),
    ("label_quality.*", 0.02),
    ("relabel_rounds", 0.0),
    ("step", 0.0),
    ("single_camera_images", 0.0),
    ("single_camera_images_kept", 2.0),
]


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts and lists as ``{"a.b.0": leaf}``, the way ``dvc metrics`` names them."""
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = ((str(i), v) for i, v in enumerate(value))
    else:
        return {prefix: value}
    out: dict[str, Any] = {}
    for key, sub in items:
        out.update(flatten(sub, f"{prefix}.{key}" if prefix else str(key)))
    return out


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def tolerance(key: str) -> float | None:
    """The reference tolerance of a metric; None = not gated."""
    return next((tol for pattern, tol in REFERENCE_TOL if fnmatch.fnmatchcase(key, pattern)), None)


def outcome(repo: Path) -> dict[str, Any]:
    """What must reproduce: ``{"relabel.<round>.<stat>": ..., "metrics.<key>": ...}``."""
    tiny = TinyRepo(repo)
    rounds = [{k: v for k, v in e.items() if k not in TIMING_KEYS} for e in tiny.events("relabel")]
    return flatten({"relabel": rounds, "metrics": tiny.json(METRICS)})


def compare_runs(a: dict[str, Any], b: dict[str, Any], tol: float = RERUN_TOL) -> list[str]:
    """One line per value that differs between two runs' :func:`outcome` beyond ``tol``."""
    problems = []
    for key in sorted(a.keys() | b.keys()):
        x, y = a.get(key), b.get(key)
        if is_number(x) and is_number(y):
            same = abs(x - y) <= tol or (math.isnan(x) and math.isnan(y))
        else:
            same = x == y
        if not same:
            problems.append(f"rerun differs: {key}: {x!r} vs {y!r} (tolerance {tol:g})")
    return problems


def drifted(new: dict[str, Any], ref: dict[str, Any]) -> list[str]:
    """One line per gated reference metric that is missing or moved beyond its tolerance."""
    problems = []
    for key, want in sorted(flatten(ref).items()):
        tol = tolerance(key)
        if tol is None or not is_number(want):
            continue
        got = new.get(key)
        if not is_number(got):
            problems.append(f"drift: {key}: missing from {METRICS} (reference {want:g})")
        elif not abs(got - want) <= tol + 1e-12:
            problems.append(
                f"drift: {key}: {got:.6g} vs reference {want:.6g} ({got - want:+.4g}), beyond tolerance {tol:g}"
            )
    return problems


def metrics_diff(repo: Path, reference: dict[str, Any]) -> str:
    """The real ``dvc metrics diff``: ``reference`` committed in ``repo``'s git as
    ``metrics/train.json``, the run's own file put back in the workspace (byte for byte, so
    ``dvc status`` stays clean), HEAD vs workspace as a Markdown table."""
    path = repo / METRICS
    mine = path.read_bytes()
    try:
        path.write_text(json.dumps(reference, indent=2, sort_keys=True) + "\n")
        sh(repo, "git", "add", METRICS)
        sh(repo, "git", *GIT_ID, "commit", "-q", "--allow-empty", "-m", "reference metrics")
    finally:
        path.write_bytes(mine)
    done = sh(repo, "dvc", "metrics", "diff", "HEAD", "--targets", METRICS, "--all", "--md", "--precision", "4")
    return done.stdout.strip()


def check_reference(repo: Path, reference: Path) -> list[str]:
    """Print the diff of ``repo``'s metrics against ``reference``; return the drifts."""
    if not reference.is_file():
        return [f"{reference}: no reference; create it with --update-reference"]
    ref = json.loads(reference.read_text())
    print(f"==> {METRICS} (workspace: this run) vs the reference {reference} (HEAD)")
    print(metrics_diff(repo, ref))
    return drifted(flatten(json.loads((repo / METRICS).read_text())), ref)


def run_twice(workdir: Path, seed: int, jobs: int) -> list[Path]:
    """Two fresh tiny repos with the same seed, ``dvc repro`` in each."""

    def one(name: str) -> Path:
        start = time.perf_counter()
        log = workdir / f"{name}.log"
        try:
            repo = build_repo(workdir / name, seed)
            log.write_text(repro(repo))
        except RuntimeError as err:  # a failed command, with its whole output
            log.write_text(str(err))
            raise
        print(f"==> run {name}: dvc repro in {time.perf_counter() - start:.0f} s ({repo.root})")
        return repo.root

    with ThreadPoolExecutor(max_workers=max(jobs, 1)) as pool:
        return list(pool.map(one, ["run_a", "run_b"]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reference", type=Path, default=REFERENCE)
    ap.add_argument("--workdir", type=Path, default=None, help="where the tiny repos go (default: a temp dir)")
    ap.add_argument("--jobs", type=int, default=2, help="runs side by side")
    ap.add_argument(
        "--update-reference", action="store_true", help="write the first run's metrics as the new reference"
    )
    ap.add_argument(
        "--reuse",
        type=Path,
        action="append",
        default=[],
        metavar="REPO",
        help="check finished tiny repos instead of running (1 or 2)",
    )
    args = ap.parse_args(argv)
    if len(args.reuse) > 2:
        ap.error("--reuse takes one or two repos")

    workdir = None
    if args.reuse:
        repos = [p.resolve() for p in args.reuse]
    else:
        workdir = args.workdir or Path(tempfile.mkdtemp(prefix="dynamix-repro-"))
        try:
            repos = run_twice(workdir, args.seed, args.jobs)
        except RuntimeError as err:
            print(f"repro_check: a pipeline run failed: {err}", file=sys.stderr)
            print(f"repro_check: tiny repos and logs kept in {workdir}", file=sys.stderr)
            return 1

    problems: list[str] = []
    if len(repos) == 2:
        problems += compare_runs(outcome(repos[0]), outcome(repos[1]))
        if not problems:
            print(f"==> rerun: relabeling statistics and {METRICS} agree within {RERUN_TOL:g}")
    if args.update_reference and not problems:
        if args.reference.is_file():
            check_reference(repos[0], args.reference)  # show what moves
        args.reference.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(repos[0] / METRICS, args.reference)
        print(f"==> wrote {args.reference}")
    elif not args.update_reference:
        problems += check_reference(repos[0], args.reference)

    if problems:
        for line in problems:
            print(f"repro_check: {line}", file=sys.stderr)
        if workdir is not None:
            print(f"repro_check: tiny repos kept in {workdir}", file=sys.stderr)
        return 1
    print("==> reproducibility check passed")
    if workdir is not None and args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
