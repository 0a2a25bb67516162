"""``dynamix track`` and ``dynamix promote``: MLflow logging and the promotion gate as commands.

``track`` logs a finished training directory as one MLflow run (its own params.json,
replayed step/relabel/eval events, summary metrics, checkpoints, plots, the model; the same
directory tracked again updates that run) and writes the run id to
``metrics/tracking.json``; ``promote`` registers that run's model and applies the gate,
writing ``metrics/promotion.json``. Both are DVC stages after ``train``. MLflow is imported
inside the handlers only, so ``dynamix --help`` stays instant.

No stale record: ``track`` removes the previous ``tracking.json`` before it starts and writes
the new one only after its MLflow run has finished, so a killed ``track`` leaves none; the
record carries the sha256 of the run's ``best.pt``, and ``promote`` refuses a record whose
``best.pt`` is not the one in ``train.out_dir`` now.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from dynamix.config import Params, load_params
from dynamix.errors import DynamixError
from dynamix.io import clean_temp_files, file_sha256, write_json_atomic

log = logging.getLogger(__name__)

EXIT_REJECTED = 3


def _quiet_mlflow() -> None:
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)


def _track(args: argparse.Namespace) -> int:
    _quiet_mlflow()
    from flows.tracking import (
        log_run_from_dir,
        log_training_outputs,
        log_validation_results,
        start_tracked_run,
        store_errors,
        store_lock,
        tracking_uri,
    )

    params = load_params(args.params, args.set)
    run_dir = Path(args.run_dir or params.train.out_dir)
    if not (run_dir / "metrics.json").is_file():
        raise DynamixError(f"{run_dir}/metrics.json: not found; run `dynamix train` first")
    # the record of an earlier track goes first: killed from here on, none is left to promote
    out = Path(args.out)
    out.unlink(missing_ok=True)
    clean_temp_files(out.parent, [out.name])
    uri = tracking_uri(params)  # lineage from the run's params.json; one track at a time per sqlite store
    with store_errors(uri), store_lock(uri), start_tracked_run(params, run_dir, run_name=args.run_name) as (run, own):
        events = log_run_from_dir(run_dir, own)
        summary_path = Path(params.validation.summary_path)
        if summary_path.is_file():
            log_validation_results(params, json.loads(summary_path.read_text()))
        outputs = log_training_outputs(run_dir, own, log_model=args.model, plots_dir=args.plots_dir)
    record = {
        "run_id": run.info.run_id,
        "experiment_id": run.info.experiment_id,
        "tracking_uri": tracking_uri(params),
        "run_dir": str(run_dir),
        "best_sha256": _best_sha256(run_dir),  # what `promote` checks it is judging
        "events": events,
        **outputs,
    }
    write_json_atomic(out, record)  # only now: the MLflow run above has finished
    print(f"MLflow run {run.info.run_id}: {events} events, model {outputs['model_uri']}")
    return 0


def _best_sha256(run_dir: Path) -> str | None:
    best = run_dir / "best.pt"
    return file_sha256(best) if best.is_file() else None


def _run_id(args: argparse.Namespace, params: Params) -> str:
    """``--run-id``, else the tracking record's run, which must be the run of the
    ``best.pt`` being promoted (``<train.out_dir>/best.pt``, by sha256): a record left by
    the track of an earlier training is refused."""
    if args.run_id:
        return args.run_id
    path = Path(args.tracking_file)
    if not path.is_file():
        raise DynamixError(f"{path}: not found; run `dynamix track` first or pass --run-id")
    try:
        record = json.loads(path.read_text())
        run_id = str(record["run_id"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DynamixError(f"{path}: not a tracking record ({exc}); run `dynamix track` again") from exc
    out_dir = Path(params.train.out_dir)
    if record.get("best_sha256") is None or record.get("best_sha256") != _best_sha256(out_dir):
        raise DynamixError(
            f"{path}: MLflow run {run_id} logged another best.pt than {out_dir / 'best.pt'} "
            f"(tracked {record.get('run_dir')}); run `dynamix track` on this run first, or pass --run-id"
        )
    return run_id


def _promote(args: argparse.Namespace) -> int:
    _quiet_mlflow()
    from flows.promotion import candidate_evaluation, promote_candidate

    params = load_params(args.params, args.set)
    run_id = _run_id(args, params)
    evaluation = candidate_evaluation(params)  # the same report as the flow's gate
    # the baseline must be of the same data version: a stale metrics/baseline.json is refused
    result = promote_candidate(params, run_id, evaluation, override_reason=args.override_reason)
    write_json_atomic(args.out, result)
    override = f" (override: {result['override_reason']})" if result.get("override_reason") else ""
    print(f"{result['model']} v{result['version']}: {result['reason']}{override}")
    if not result["promoted"] and args.strict:
        print(f"dynamix promote: {result['reason']}", file=sys.stderr)
        return EXIT_REJECTED
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("track", help="log a finished training run to MLflow")
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--run-dir", default=None, help="training output (default: train.out_dir)")
    p.add_argument("--run-name", default=None, help="MLflow run name (default: from protocol, variant, seed)")
    p.add_argument("--out", default="metrics/tracking.json", help="where the run id is written")
    p.add_argument("--plots-dir", default=None, help="also keep the plots here")
    p.add_argument(
        "--no-model", dest="model", action="store_false", help="skip logging the model (then it cannot be promoted)"
    )
    p.set_defaults(func=_track)

    p = subparsers.add_parser("promote", help="register the tracked model and apply the promotion gate")
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--run-id", default=None, help="MLflow run (default: from --tracking-file)")
    p.add_argument("--tracking-file", default="metrics/tracking.json")
    p.add_argument("--out", default="metrics/promotion.json")
    p.add_argument("--strict", action="store_true", help=f"exit {EXIT_REJECTED} when the model is rejected")
    p.add_argument(
        "--override-reason",
        default=None,
        metavar="TEXT",
        help="judge weights that were rejected before again under the current gate; "
        "the reason is logged on the version and in --out",
    )
    p.set_defaults(func=_promote)
