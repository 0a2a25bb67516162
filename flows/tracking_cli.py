"""``dynamix track`` and ``dynamix promote``: MLflow logging and the promotion gate as commands.

``track`` logs a finished training directory as one MLflow run (replayed step/relabel/eval
events, summary metrics, checkpoints, plots, the model) and writes the run id to
``metrics/tracking.json``; ``promote`` registers that run's model and applies the gate,
writing ``metrics/promotion.json``. Both are DVC stages after ``train``. MLflow is imported
inside the handlers only, so ``dynamix --help`` stays instant.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from dynamix.config import load_params
from dynamix.errors import DynamixError
from dynamix.io import write_json_atomic

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
        start_pipeline_run,
        tracking_uri,
    )

    params = load_params(args.params, args.set)
    run_dir = Path(args.run_dir or params.train.out_dir)
    if not (run_dir / "metrics.json").is_file():
        raise DynamixError(f"{run_dir}/metrics.json: not found; run `dynamix train` first")
    with start_pipeline_run(params, run_name=args.run_name) as run:
        events = log_run_from_dir(run_dir, params)
        summary_path = Path(params.validation.summary_path)
        if summary_path.is_file():
            log_validation_results(params, json.loads(summary_path.read_text()))
        outputs = log_training_outputs(run_dir, params, log_model=args.model, plots_dir=args.plots_dir)
    record = {
        "run_id": run.info.run_id,
        "experiment_id": run.info.experiment_id,
        "tracking_uri": tracking_uri(params),
        "run_dir": str(run_dir),
        "events": events,
        **outputs,
    }
    write_json_atomic(args.out, record)
    print(f"MLflow run {run.info.run_id}: {events} events, model {outputs['model_uri']}")
    return 0


def _run_id(args: argparse.Namespace) -> str:
    if args.run_id:
        return args.run_id
    path = Path(args.tracking_file)
    if not path.is_file():
        raise DynamixError(f"{path}: not found; run `dynamix track` first or pass --run-id")
    return str(json.loads(path.read_text())["run_id"])


def _promote(args: argparse.Namespace) -> int:
    _quiet_mlflow()
    from flows.promotion import candidate_evaluation, register_and_promote

    params = load_params(args.params, args.set)
    run_id = _run_id(args)
    metrics = candidate_evaluation(params)["targets"]  # the same report as the flow's gate
    result = register_and_promote(params, run_id, metrics)
    write_json_atomic(args.out, result)
    print(f"{result['model']} v{result['version']}: {result['reason']}")
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
    p.set_defaults(func=_promote)
