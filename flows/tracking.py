"""The MLflow adapter: one run per pipeline run, live and post-hoc training logs.

With :mod:`flows.promotion` the only code that imports ``mlflow``. Names are fixed so that
runs compare side by side in the UI:

- params: every key of params.yaml, flattened (``train.lr``, ``data.sources.0.name``);
- tags: ``git.commit``, ``git.dirty``, ``dvc.data_md5``, ``dynamix.preset``,
  ``dynamix.protocol`` (``D+M+C->market-syn,night-syn``), sources, targets, version;
- metrics: ``train/<loss|lr|...>`` per step, ``relabel/<stat>`` per round (histograms as
  ``relabel/round_NN_step_S.json``), ``<target>/<rank1|rank5|rank10|mAP|mINP>`` and
  ``mean_mAP`` per evaluation, ``best/<target>/<metric>`` for the logged model,
  ``label_quality/<before|after>/<purity|fragmentation|ari>``;
- artifacts: ``checkpoints/``, ``train/`` (metrics.json, log.jsonl, params.json),
  ``plots/``, ``validation/``, and the model ``model`` (``mlflow.pytorch``, pt2).

Every function takes an optional ``run_id``: MLflow's active run is per thread, so code
running in a worker thread (a Prefect task) passes the id instead of relying on it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Metric, Param
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from dynamix.config import Params, flatten, to_dict
from dynamix.errors import DynamixError
from dynamix.train.callbacks import Callback
from flows.run_info import run_tags
from flows.run_outputs import input_example, load_trained_model, read_events, read_summary

log = logging.getLogger(__name__)

SERVER_SCHEMES = ("http://", "https://", "databricks")
MAX_PARAM_VALUE = 6000  # MLflow's limit on a param value
BATCH_PARAMS, BATCH_METRICS = 100, 1000  # MLflow's log_batch limits


def tracking_uri(params: Params) -> str:
    """Env ``MLFLOW_TRACKING_URI``, else ``tracking.uri``; a relative sqlite path made absolute."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or params.tracking.uri
    if uri.startswith("sqlite:///"):
        path = Path(uri[len("sqlite:///") :])
        if not path.is_absolute():
            path = Path.cwd() / path
        path.parent.mkdir(parents=True, exist_ok=True)
        uri = f"sqlite:///{path}"  # four slashes: sqlite:////abs/mlflow.db
    return uri


def artifact_location(params: Params, uri: str) -> str | None:
    """Where a new experiment keeps artifacts; None lets a tracking server decide."""
    loc = params.tracking.artifact_location
    if loc:
        return loc if "://" in loc else Path(loc).resolve().as_uri()
    if uri.startswith(SERVER_SCHEMES):
        return None
    base = Path(uri[len("sqlite:///") :]).parent if uri.startswith("sqlite:///") else Path.cwd()
    return (base / "mlartifacts").resolve().as_uri()


def configure(params: Params) -> str:
    """Point MLflow at the store of ``params`` and return the experiment id (made if new).

    ``mlflow.set_tracking_uri`` also exports ``MLFLOW_TRACKING_URI``; it is put back so a
    later call with other params (tests, a second flow) is not overridden by our own value.
    """
    uri = tracking_uri(params)
    before = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    if before is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = before
    client, name = MlflowClient(), params.tracking.experiment
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            return client.create_experiment(name, artifact_location=artifact_location(params, uri))
        except MlflowException:  # created meanwhile by another process
            experiment = client.get_experiment_by_name(name)
    if experiment is None:
        raise DynamixError(f"tracking: cannot create MLflow experiment {name!r} at {uri}")
    if experiment.lifecycle_stage == "deleted":
        client.restore_experiment(experiment.experiment_id)
    return experiment.experiment_id


def _param_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= MAX_PARAM_VALUE else text[: MAX_PARAM_VALUE - 1] + "…"


def log_params(params: Params, run_id: str) -> None:
    """Every params.yaml key, flattened, in batches within MLflow's limits."""
    items = [Param(k[:250], _param_value(v)) for k, v in sorted(flatten(params).items())]
    client = MlflowClient()
    for i in range(0, len(items), BATCH_PARAMS):
        client.log_batch(run_id, params=items[i : i + BATCH_PARAMS])


@contextlib.contextmanager
def start_pipeline_run(
    params: Params, *, run_name: str | None = None, tags: dict[str, str] | None = None
) -> Iterator[mlflow.ActiveRun]:
    """One MLflow run for one pipeline run: params, tags and the resolved config logged."""
    experiment_id = configure(params)
    all_tags = {**run_tags(params), **(tags or {})}
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=all_tags) as run:
        log_params(params, run.info.run_id)
        mlflow.log_dict(to_dict(params), "config/params.json")
        log.info("MLflow run %s in experiment %s", run.info.run_id, experiment_id)
        yield run


@contextlib.contextmanager
def in_run(run_id: str | None) -> Iterator[str]:
    """Make ``run_id`` the active run in this thread for fluent calls; its status is kept."""
    active = mlflow.active_run()
    if run_id is None or (active is not None and active.info.run_id == run_id):
        if active is None:
            raise DynamixError("tracking: no active MLflow run; use start_pipeline_run or run_id")
        yield active.info.run_id
        return
    client = MlflowClient()
    status = client.get_run(run_id).info.status
    with mlflow.start_run(run_id=run_id, nested=active is not None):
        yield run_id
    if status == "RUNNING":  # leaving the context marked it FINISHED: the owner still runs it
        client.update_run(run_id, status="RUNNING")


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    return None


class MlflowCallback(Callback):
    """Trainer events → MLflow metrics (and histogram artifacts); also replays a log.

    Step metrics are logged at step 1 and every ``log_every`` steps; relabel and eval
    events always. ``buffered`` (replay) sends everything in large batches at :meth:`flush`.
    ``rounds_done``: relabel events logged before (a resumed training run: the number of
    relabel lines in its log.jsonl), so round numbers continue.
    """

    def __init__(
        self,
        run_id: str | None = None,
        log_every: int = 10,
        buffered: bool = False,
        rounds_done: int = 0,
    ) -> None:
        active = mlflow.active_run()
        if run_id is None and active is None:
            raise DynamixError("MlflowCallback: no active MLflow run and no run_id given")
        self.run_id = run_id or active.info.run_id
        self.log_every, self.buffered = max(int(log_every), 1), buffered
        self.client = MlflowClient()
        self.rounds = int(rounds_done)
        self.pending: list[Metric] = []

    def _add(self, step: int, values: dict[str, Any]) -> None:
        now = int(time.time() * 1000)
        for key, value in values.items():
            number = _number(value)
            if number is not None:
                self.pending.append(Metric(key, number, now, int(step)))
        if not self.buffered or len(self.pending) >= BATCH_METRICS:
            self.flush()

    def flush(self) -> None:
        while self.pending:
            chunk, self.pending = self.pending[:BATCH_METRICS], self.pending[BATCH_METRICS:]
            self.client.log_batch(self.run_id, metrics=chunk)

    def on_step(self, step: int, metrics: dict[str, Any]) -> None:
        if step == 1 or step % self.log_every == 0:
            self._add(step, {f"train/{k}": v for k, v in metrics.items()})

    def on_relabel(self, step: int, stats: dict[str, Any]) -> None:
        self.rounds += 1
        scalars = {k: v for k, v in stats.items() if not isinstance(v, list | dict)}
        values = {"relabel/round": self.rounds, **{f"relabel/{k}": v for k, v in scalars.items()}}
        self._add(step, values)
        hists = {k: v for k, v in stats.items() if isinstance(v, list)}
        bins = len(next(iter(hists.values()), []))
        record = {"step": step, "round": self.rounds, **scalars, **hists}
        record["hist_edges"] = [-1 + 2 * i / bins for i in range(bins + 1)] if bins else []
        name = f"relabel/round_{self.rounds:02d}_step_{step}.json"
        self.client.log_dict(self.run_id, record, name)

    def on_eval(self, step: int, metrics: dict[str, Any]) -> None:
        self._add(step, metrics)


def log_run_from_dir(
    run_dir: str | os.PathLike[str], params: Params, *, run_id: str | None = None
) -> int:
    """Replay ``<run_dir>/log.jsonl`` into the run (training ran without the callback).

    Same names, steps and sampling as the live :class:`MlflowCallback`; returns the number
    of events read.
    """
    callback = MlflowCallback(run_id, params.tracking.log_every, buffered=True)
    events = read_events(run_dir)
    for e in events:
        payload = {k: v for k, v in e.items() if k not in ("event", "step")}
        if e["event"] == "step":
            callback.on_step(e["step"], payload)
        elif e["event"] == "relabel":
            callback.on_relabel(e["step"], payload)
        elif e["event"] == "eval":
            callback.on_eval(e["step"], payload)
    callback.flush()
    return len(events)


def _summary_metrics(summary: dict[str, Any]) -> dict[str, float]:
    out = {"best/mean_mAP": summary.get("best_mean_mAP"), "best/step": summary.get("best_step")}
    out["relabel/rounds"] = summary.get("relabel_rounds")
    out["relabel/images_kept"] = summary.get("single_camera_images_kept")
    for when, quality in (summary.get("label_quality") or {}).items():
        out.update({f"label_quality/{when}/{k}": v for k, v in quality.items()})
    return {k: float(v) for k, v in out.items() if _number(v) is not None}


def log_reid_model(trained: Any, params: Params, *, run_id: str | None = None) -> str:
    """Log ``trained.model`` as ``model`` (pt2, with signature + input example); its URI."""
    import mlflow.pytorch
    import numpy as np
    import torch

    example = input_example(params, trained.img_size)
    requirements = [f"torch=={torch.__version__.split('+')[0]}", f"numpy=={np.__version__}"]
    with in_run(run_id):
        info = mlflow.pytorch.log_model(
            trained.model.cpu().eval(), name="model", input_example=example,
            pip_requirements=requirements,
        )  # fmt: skip
        mlflow.set_tags({
            "dynamix.model_uri": info.model_uri,
            "dynamix.model_checkpoint": trained.checkpoint.name,
            "dynamix.model_step": str(trained.step),
            "dynamix.model_encoder": trained.encoder,
        })  # fmt: skip
    return info.model_uri


def log_training_outputs(
    run_dir: str | os.PathLike[str],
    params: Params,
    *,
    log_model: bool = True,
    run_id: str | None = None,
    plots_dir: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Log a finished run directory: summary metrics, checkpoints, plots, the model.

    Returns ``{"metrics": {target: {...}}, "model_uri", "checkpoint", "step"}``: the
    metrics are those of the logged model (its checkpoint's evaluation), the ones the
    promotion gate judges.
    """
    from flows.plots import write_training_plots
    from flows.run_outputs import write_ranked_lists

    run_dir = Path(run_dir)
    summary = read_summary(run_dir)
    trained = load_trained_model(run_dir)
    with in_run(run_id) as rid:
        client = MlflowClient()
        values = _summary_metrics(summary)
        logged = client.get_run(rid).data.metrics
        for target, result in (summary.get("targets") or {}).items():
            final = {f"{target}/{k}": v for k, v in result.items()}
            values.update({k: v for k, v in final.items() if k not in logged})  # not replayed
        for target, result in trained.metrics.items():
            values.update({f"best/{target}/{k}": v for k, v in result.items()})
        mlflow.log_metrics({k: float(v) for k, v in values.items()}, step=int(summary["step"]))
        for name in ("last.pt", "best.pt"):
            if (run_dir / name).is_file():
                mlflow.log_artifact(str(run_dir / name), "checkpoints")
        for name in ("metrics.json", "log.jsonl", "params.json"):
            if (run_dir / name).is_file():
                mlflow.log_artifact(str(run_dir / name), "train")
        with tempfile.TemporaryDirectory(prefix="dynamix-plots-") as tmp:
            out = Path(plots_dir or tmp)
            pictures = write_training_plots(read_events(run_dir), out)
            queries = params.tracking.ranked_list_queries
            pictures += write_ranked_lists(trained, params, out, queries)
            for picture in pictures:
                mlflow.log_artifact(str(picture), "plots")
        model_uri = log_reid_model(trained, params, run_id=rid) if log_model else None
    return {
        "metrics": trained.metrics,
        "model_uri": model_uri,
        "checkpoint": trained.checkpoint.name,
        "step": trained.step,
    }


def log_validation_results(
    params: Params, summary: dict[str, Any], *, run_id: str | None = None
) -> None:
    """The GX summary and full results under ``validation/``, also (above all) on failure."""
    with in_run(run_id):
        mlflow.log_dict(summary, "validation/summary.json")
        reports = Path(params.validation.reports_dir)
        if reports.is_dir():
            mlflow.log_artifacts(str(reports), "validation/reports")
        mlflow.set_tag("validation.success", str(bool(summary.get("success"))).lower())
        mlflow.log_metric("validation/failed_expectations", len(summary.get("failures", [])))


def model_metrics_from_run(run_id: str) -> dict[str, dict[str, float]]:
    """``{target: {metric: value}}`` of the run's logged model (its ``best/`` metrics)."""
    metrics = MlflowClient().get_run(run_id).data.metrics
    out: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        parts = key.split("/")
        if len(parts) == 3 and parts[0] == "best":
            out.setdefault(parts[1], {})[parts[2]] = float(value)
    return out
