"""The main pipeline flow ``dynamix-pipeline``: data → gate → train → evaluate → log → promote.

Thin orchestration over ``dynamix`` (one task per step, each a plain function the CLI and
DVC stages use too). Every task reads ``params_path`` + ``overrides`` itself, so any of
them can run in another process or on another machine. One MLflow run per flow run: the
flow opens it and passes its id to every task (MLflow's active run is per thread).

- ``resolve-data``: ``data.raw_dir`` brought to its DVC-tracked version
  (:mod:`flows.data_source`); untracked folders are used as they are.
- ``prepare-manifests`` and ``validate-data``: the Great Expectations gate. A failing
  suite logs the full GX results to MLflow, publishes a markdown artifact naming each
  failing expectation and raises: the flow run fails and nothing downstream runs. A pass
  on exactly the same inputs as the last pass (manifests, image sizes and mtimes,
  settings, gate code: :mod:`flows.gate_record`) is reused instead of re-run.
- ``train``: the GPU task. Retried twice on failure (not on :class:`DynamixError`, which
  retrying cannot fix); a retry resumes ``<train.out_dir>/last.pt`` when its params
  match, so a crash at step 9,000 does not start over. With ``train.nproc_per_node`` > 1
  it launches torchrun with that many ranks of :mod:`flows.train_worker` on its node.
  See docs/pipeline.md for routing it to a GPU work pool.
- ``evaluate``: every target domain from ``best.pt`` (the trainer's recorded evaluation
  of it when still valid, else a feature pass), by the same function as the DVC
  ``promote`` stage (:func:`flows.promotion.candidate_evaluation`); ``log-outputs``:
  checkpoints, curves, ranked lists and the model into the MLflow run; ``promote``:
  register the model and move the alias only on acceptance (:mod:`flows.promotion`),
  one promotion at a time (a Prefect global concurrency limit, :data:`PROMOTE_LIMIT`).

The flow ends with a table artifact (``pipeline-metrics``) and a markdown artifact
(``promotion``). It returns a summary dict; with ``fail_on_reject`` a rejected model ends
the flow run ``Failed`` with the reasons.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.runtime import flow_run, task_run
from prefect.states import Failed

from dynamix.config import Params, load_params, to_dict
from dynamix.errors import DynamixError
from dynamix.train.callbacks import Callback

log = logging.getLogger(__name__)

#: Extra trainer callbacks, one fresh list per attempt of the train task: an extension
#: point for progress reporting or profiling (the tests inject a transient failure here).
TRAIN_CALLBACKS: list[Callable[[], Callback]] = []

#: The module every torchrun rank runs when ``train.nproc_per_node`` > 1 (the tests point
#: it at a wrapper that crashes the first attempt, to check that the retry resumes).
TRAIN_WORKER = "flows.train_worker"

#: Keys that may differ between a checkpoint and the retry that resumes it: where and how
#: fast the run executes, not what it computes.
RUNTIME_KEYS = {"out_dir", "device", "num_workers", "eval_batch_size"}
RESUME_SECTIONS = ("data", "model", "train", "evaluation")


class DataValidationError(DynamixError):
    """The Great Expectations gate failed: the data must be fixed before training."""


def _params(params_path: str, overrides: list[str]) -> Params:
    return load_params(params_path, overrides)


def _no_retry_on_user_error(task: Any, task_run: Any, state: Any) -> bool:
    """Retry transient failures only: a DynamixError (bad config or data) would recur."""
    try:
        state.result()
    except DynamixError:
        return False
    except Exception:
        return True
    return True


@task(name="resolve-data")
def resolve_data_task(params_path: str, overrides: list[str]) -> dict[str, Any]:
    from flows.data_source import resolve_data

    return resolve_data(_params(params_path, overrides))


@task(name="prepare-manifests")
def prepare_task(params_path: str, overrides: list[str]) -> dict[str, Any]:
    from dynamix.prepare import prepare_manifests

    return prepare_manifests(_params(params_path, overrides))


@task(name="validate-data")
def validate_task(params_path: str, overrides: list[str], run_id: str) -> dict[str, Any]:
    """The gate: GX results to MLflow and a markdown artifact, then raise on bad data."""
    from flows import tracking
    from flows.validation import failure_line, format_markdown, validate_data

    params = _params(params_path, overrides)
    summary = validate_data(params, reuse=True)
    if summary.get("reused_from"):
        get_run_logger().info("data gate: inputs unchanged since its pass at %s, result reused", summary["reused_from"])
    docs_link = tracking.log_validation_results(params, summary, run_id=run_id)
    create_markdown_artifact(
        key="data-validation",
        markdown=format_markdown(summary, docs_link),  # links GX Data Docs
        description="Great Expectations suites over the manifests",
    )
    if not summary["success"]:
        lines = "\n".join(failure_line(f) for f in summary["failures"])
        raise DataValidationError(f"data validation failed, training not run:\n{lines}")
    return summary


def _comparable(params: dict[str, Any]) -> dict[str, Any]:
    out = {k: params.get(k) for k in RESUME_SECTIONS}
    out["train"] = {k: v for k, v in (out["train"] or {}).items() if k not in RUNTIME_KEYS}
    return out


def resume_plan(params: Params, attempt: int, resume: bool) -> tuple[bool, str]:
    """Whether this attempt continues ``last.pt``, and why (logged, and tested).

    A first attempt starts fresh unless ``resume`` asks for it; a retry resumes. Either
    way only a checkpoint whose params match (up to :data:`RUNTIME_KEYS`) is resumed. A
    fresh start removes the previous run's files first (every file the trainer writes, and
    the temporary files of killed writes; ``dynamix train --overwrite``), so a retry can
    never pick up a stale ``last.pt``, nor the evaluation a stale ``best.pt``, nor tracking
    a stale ``metrics.json``. A fresh flow run into a used ``train.out_dir`` therefore
    replaces the run there, as ``dvc repro`` does; ``resume=True`` continues it instead. An unreadable
    ``last.pt`` (zero bytes, truncated) raises the :class:`DynamixError` naming it: the
    task fails once, without retries that would read the same file again.
    """
    out = Path(params.train.out_dir)
    last = out / "last.pt"
    why = f"attempt {attempt}"
    if attempt > 1 or resume:
        if last.is_file():
            from dynamix.train.state import load_checkpoint

            saved = load_checkpoint(last, mmap=True)
            if _comparable(saved.get("params") or {}) == _comparable(to_dict(params)):
                return True, f"{why}: resuming {last} at step {int(saved['step'])}"
            why += f": {last} was written with other params"
        else:
            why += f": no {last}"
    # the flow owns train.out_dir as DVC owns a stage's outs: a fresh start replaces the run there
    from dynamix.train.preflight import prepare_out_dir

    prepare_out_dir(out, resume=False, overwrite=True, main=True)
    return False, f"{why}: training from step 0"


@task(
    name="train",
    retries=2,
    retry_delay_seconds=5,
    retry_condition_fn=_no_retry_on_user_error,
    tags=["gpu"],
)
def train_task(params_path: str, overrides: list[str], run_id: str, resume: bool = False) -> dict[str, Any]:
    """Train (or continue) the model; live metrics go to the MLflow run ``run_id``."""
    from dynamix.train.launch import wants_launch
    from flows.run_outputs import read_events
    from flows.train_worker import tracked_trainer

    params = _params(params_path, overrides)
    attempt = int(task_run.run_count or 1)
    resumed, why = resume_plan(params, attempt, resume)
    get_run_logger().info(why)
    # log.jsonl ends at the resumed step: relabel rounds logged so far keep their numbers
    out = Path(params.train.out_dir)
    rounds = sum(e["event"] == "relabel" for e in read_events(out)) if resumed else 0
    if wants_launch(params.train.nproc_per_node):
        metrics = _train_under_torchrun(params, params_path, overrides, run_id, resumed, rounds)
    else:
        callbacks = [make() for make in TRAIN_CALLBACKS]
        metrics = tracked_trainer(params, resumed, run_id, rounds, callbacks).fit()
    return {**metrics, "attempt": attempt, "resumed": resumed}


def _train_under_torchrun(
    params: Params,
    params_path: str,
    overrides: list[str],
    run_id: str,
    resumed: bool,
    rounds: int,
) -> dict[str, Any]:
    """``train.nproc_per_node`` ranks of :mod:`flows.train_worker` under torchrun.

    Their output goes to the task's log; a rank's :class:`DynamixError` fails the task
    with its message (no retry); any other failure (a killed rank, a lost GPU) raises
    :class:`RuntimeError`, so the retry resumes ``last.pt``. ``TRAIN_CALLBACKS`` are
    in-process hooks and do not reach the ranks (:data:`TRAIN_WORKER` does).
    """
    import tempfile

    from dynamix.train.launch import run_torchrun, torchrun_command

    logger = get_run_logger()
    nproc = params.train.nproc_per_node
    with tempfile.TemporaryDirectory(prefix="dynamix-train-") as tmp:
        metrics_out, error_file = Path(tmp) / "metrics.json", Path(tmp) / "error.json"
        args = [
            "--params",
            str(params_path),
            "--run-id",
            run_id,
            "--rounds-done",
            str(rounds),
            "--metrics-out",
            str(metrics_out),
            "--error-file",
            str(error_file),
        ]
        for item in overrides:
            args += ["--set", item]
        args += ["--resume"] if resumed else []
        command = torchrun_command(nproc, TRAIN_WORKER, args)
        logger.info("torchrun: %d processes on this node", nproc)
        code, tail = run_torchrun(command, on_line=lambda line: logger.info("%s", line))
        if error_file.is_file():
            raise DynamixError(json.loads(error_file.read_text())["error"])
        if code != 0 or not metrics_out.is_file():
            last = " | ".join(line for line in tail[-5:] if line.strip())
            raise RuntimeError(f"torchrun with {nproc} processes exited with {code}: {last}")
        return json.loads(metrics_out.read_text())


@task(name="evaluate")
def evaluate_task(params_path: str, overrides: list[str]) -> dict[str, Any]:
    """Every target domain, from ``best.pt`` (the checkpoint that gets logged): the report
    ``dynamix promote`` judges too (:func:`flows.promotion.candidate_evaluation`)."""
    from flows.promotion import candidate_evaluation

    result = candidate_evaluation(_params(params_path, overrides))
    get_run_logger().info("best.pt: %s evaluation at step %d", result["source"], result["step"])
    return result


@task(name="log-outputs")
def log_task(params_path: str, overrides: list[str], run_id: str) -> dict[str, Any]:
    from flows.tracking import log_training_outputs

    params = _params(params_path, overrides)
    return log_training_outputs(params.train.out_dir, params, log_model=True, run_id=run_id)


#: The Prefect global concurrency limit (1 slot) every promote task holds: flow runs on
#: other workers and machines take turns too, not only the processes of one machine that
#: the promotion file lock (:func:`flows.promotion.promotion_lock`) serialises.
PROMOTE_LIMIT = "dynamix-promote"
_ENSURING = threading.Lock()


@contextmanager
def promotion_slot(name: str = PROMOTE_LIMIT, timeout_s: float = 900) -> Iterator[None]:
    """Hold the one slot of the global concurrency limit ``name``, made first if missing.

    ``concurrency()`` on a limit that does not exist would go ahead without limiting, and
    a limit set to more than 1 slot would let two promotions in: so the limit is created
    with 1 slot (a concurrent creator's 409 is fine) or set back to 1 slot, active, before
    the slot is taken with ``strict=True``.
    """
    import httpx
    from prefect import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, GlobalConcurrencyLimitUpdate
    from prefect.concurrency.sync import concurrency
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    with _ENSURING, get_client(sync_client=True) as client:  # this process's threads: one creator
        try:
            limit = client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            try:
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
            except (ObjectAlreadyExists, httpx.HTTPStatusError):
                client.read_global_concurrency_limit_by_name(name)  # made by another process meanwhile
        else:
            if limit.limit != 1 or not limit.active:
                log.warning("concurrency limit %s had %d slots (active %s): set to 1", name, limit.limit, limit.active)
                client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(limit=1, active=True))
    with concurrency(name, occupy=1, timeout_seconds=timeout_s, strict=True):
        yield


@task(name="promote")
def promote_task(
    params_path: str,
    overrides: list[str],
    run_id: str,
    evaluation: dict[str, Any],
    override_reason: str | None = None,
) -> dict[str, Any]:
    """:func:`flows.promotion.promote_candidate` of the evaluate task's report, one flow run
    at a time (:func:`promotion_slot`); with no baseline of this data version on file, the
    baseline is scored on the current data (the flow has no baseline stage)."""
    from flows.promotion import promote_candidate

    params = _params(params_path, overrides)
    with promotion_slot():
        return promote_candidate(params, run_id, evaluation, override_reason=override_reason, compute_baseline=True)


@flow(name="dynamix-pipeline")
def pipeline_flow(
    params_path: str = "params.yaml",
    overrides: list[str] | None = None,
    run_name: str | None = None,
    fail_on_reject: bool = False,
    resume: bool = False,
    override_reason: str | None = None,
) -> dict[str, Any]:
    """Data → validation gate → training → evaluation → MLflow → promotion, on one config.

    ``overrides`` are ``dotted.key=value`` strings as for ``--set``; ``run_name`` names the
    MLflow run (default: protocol · variant · seed); ``resume`` continues ``last.pt``
    already on the first attempt (a rerun after a crash); ``override_reason`` lets weights
    rejected before be judged again, logged on the version (``dynamix promote
    --override-reason``).
    """
    from flows import tracking
    from flows.pipeline_report import (
        metrics_table,
        mlflow_run_link,
        promotion_markdown,
        rejection_message,
    )

    overrides = list(overrides or [])
    params = _params(params_path, overrides)  # a bad key fails here, before any work
    logger = get_run_logger()
    tags = {"prefect.flow_run_id": str(flow_run.id), "prefect.flow_run_name": str(flow_run.name)}
    with tracking.start_pipeline_run(params, run_name=run_name, tags=tags) as run:
        run_id, experiment_id = run.info.run_id, run.info.experiment_id
        data = resolve_data_task(params_path, overrides)
        prepare_task(params_path, overrides)
        validate_task(params_path, overrides, run_id)  # raises on bad data
        trained = train_task(params_path, overrides, run_id, resume)
        evaluation = evaluate_task(params_path, overrides)
        log_task(params_path, overrides, run_id)
        decision = promote_task(params_path, overrides, run_id, evaluation, override_reason)
    link = mlflow_run_link(tracking.tracking_uri(params), experiment_id, run_id)
    create_table_artifact(
        key="pipeline-metrics",
        table=metrics_table(params, evaluation),
        description=f"Target-domain metrics of best.pt (MLflow run {run_id})",
    )
    create_markdown_artifact(
        key="promotion",
        markdown=promotion_markdown(
            decision, evaluation, run_id=run_id, link=link, checkpoint=evaluation["checkpoint"]
        ),
        description="Promotion decision and its reasons",
    )
    logger.info("%s", decision["reason"])
    summary = {
        "mlflow_run_id": run_id,
        "data": data["action"],
        "train": {k: trained.get(k) for k in ("step", "best_step", "attempt", "resumed")},
        "evaluation": evaluation,
        "promotion": decision,
    }
    if fail_on_reject and not decision["promoted"]:
        return Failed(message=rejection_message(decision), data=summary)
    return summary


def main(argv: list[str] | None = None) -> int:
    """``python -m flows.pipeline``: one run, on a temporary local server if none is set."""
    p = argparse.ArgumentParser(prog="python -m flows.pipeline", description=__doc__.split("\n")[0])
    p.add_argument("--params", default="params.yaml")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a params.yaml key, e.g. train.iters=50",
    )
    p.add_argument("--run-name", default=None, help="MLflow run name")
    p.add_argument("--fail-on-reject", action="store_true", help="exit 1 when the promotion gate rejects the model")
    p.add_argument("--resume", action="store_true", help="continue <train.out_dir>/last.pt")
    p.add_argument(
        "--override-reason", default=None, metavar="TEXT", help="judge weights rejected before again; logged"
    )
    args = p.parse_args(argv)
    state = pipeline_flow(
        params_path=args.params,
        overrides=args.set,
        run_name=args.run_name,
        fail_on_reject=args.fail_on_reject,
        resume=args.resume,
        override_reason=args.override_reason,
        return_state=True,
    )
    if not state.is_completed():
        print(f"dynamix-pipeline: {state.name}: {state.message}", file=sys.stderr)
        return 1
    summary = state.result()
    print(json.dumps({"mlflow_run_id": summary["mlflow_run_id"], **summary["promotion"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
