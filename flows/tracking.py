"""The MLflow adapter: one run per pipeline run, live and post-hoc training logs.

With :mod:`flows.promotion` the only code that imports ``mlflow``. Names are fixed so that
runs compare side by side in the UI:

- params: every key of params.yaml, flattened (``train.lr``, ``data.sources.0.name``);
- tags: ``git.commit``, ``git.dirty``, ``dvc.data_md5``, ``dynamix.preset``,
  ``dynamix.protocol`` (``D+M+C->market-syn,night-syn``), sources, targets, version,
  ``variant`` (``dynamix`` or the switched-off modules) and ``seed``;
- metrics: ``train/<loss|lr|...>`` per step, ``relabel/<stat>`` per round (histograms as
  ``relabel/round_NN_step_S.json``), ``<target>/<rank1|rank5|rank10|mAP|mINP>`` and
  ``mean_mAP`` per evaluation, ``best/<target>/<metric>`` for the logged model,
  ``label_quality/<before|after>/<purity|fragmentation|ari>``;
- artifacts: ``checkpoints/``, ``train/`` (metrics.json, log.jsonl, params.json),
  ``plots/``, ``validation/`` (the GX results and their Data Docs site,
  ``validation/reports/data_docs/index.html``), and the model ``model`` (``mlflow.pytorch``,
  pt2);
- run names ``duke+msmt+cuhk→market+night · dynamix · seed 0`` (protocol, variant, seed)
  unless one is given, and each experiment's description (its ``mlflow.note.content``).

Ablation runs (``scripts/ablation.py``) go to ``<experiment>-ablation`` through
:func:`log_finished_run`, with the same metric names and ``variant``/``seed`` tags.

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
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from dynamix.config import Params, flatten, to_dict
from dynamix.errors import DynamixError
from dynamix.train.callbacks import Callback
from flows.pipeline_report import mlflow_run_link
from flows.run_info import experiment_description, run_tags
from flows.run_info import run_name as default_run_name
from flows.run_outputs import input_example, load_trained_model, read_events, read_summary

log = logging.getLogger(__name__)

SERVER_SCHEMES = ("http://", "https://", "databricks")
NOTE = "mlflow.note.content"  # the description the UI shows (and edits) for a run/experiment
# MLflow 3's UI opens an experiment in its GenAI view unless told it holds model training
KIND, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"
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


def configure(params: Params, experiment: str | None = None, description: str | None = None) -> str:
    """Point MLflow at the store of ``params`` and return the experiment id (made if new).

    ``experiment`` defaults to ``tracking.experiment``; ``description`` (default: what a
    pipeline experiment holds, :func:`flows.run_info.experiment_description`) becomes the
    experiment's note in the UI when it has none, so one written in the UI is kept.
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
    client, name = MlflowClient(), experiment or params.tracking.experiment
    note = {NOTE: description or experiment_description(params), KIND: MODEL_TRAINING}
    found = client.get_experiment_by_name(name)
    if found is None:
        try:
            location = artifact_location(params, uri)
            return client.create_experiment(name, artifact_location=location, tags=note)
        except MlflowException:  # created meanwhile by another process
            found = client.get_experiment_by_name(name)
    if found is None:
        raise DynamixError(f"tracking: cannot create MLflow experiment {name!r} at {uri}")
    if found.lifecycle_stage == "deleted":
        client.restore_experiment(found.experiment_id)
    for key in (NOTE, KIND):
        if not found.tags.get(key):
            try:
                client.set_experiment_tag(found.experiment_id, key, note[key])
            except MlflowException:  # set meanwhile by another process (a torchrun rank, a flow)
                log.debug("experiment %s: tag %s set concurrently", name, key)
    return found.experiment_id


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
    """One MLflow run for one pipeline run: params, tags and the resolved config logged.

    Named ``run_name``, else from protocol, variant and seed (:func:`flows.run_info.run_name`).
    """
    experiment_id = configure(params)
    all_tags = {**run_tags(params), **(tags or {})}
    name = run_name or default_run_name(params, all_tags.get("variant"))
    with mlflow.start_run(experiment_id=experiment_id, run_name=name, tags=all_tags) as run:
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


def log_run_from_dir(run_dir: str | os.PathLike[str], params: Params, *, run_id: str | None = None) -> int:
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
            trained.model.cpu().eval(),
            name="model",
            input_example=example,
            pip_requirements=requirements,
        )
        mlflow.set_tags(
            {
                "dynamix.model_uri": info.model_uri,
                "dynamix.model_checkpoint": trained.checkpoint.name,
                "dynamix.model_step": str(trained.step),
                "dynamix.model_encoder": trained.encoder,
            }
        )
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


def log_validation_results(params: Params, summary: dict[str, Any], *, run_id: str | None = None) -> str | None:
    """The GX summary and full results under ``validation/``, also (above all) on failure.

    The reports folder holds GX's Data Docs site (``data_docs/index.html``); its artifact
    path is tagged ``validation.data_docs``. Returns where the MLflow UI shows it (None
    without docs). The MLflow UI shows one HTML file at a time, without the files beside it,
    so the site renders fully from a downloaded copy or the reports folder.
    """
    docs = None
    with in_run(run_id) as rid:
        mlflow.log_dict(summary, "validation/summary.json")
        reports = Path(params.validation.reports_dir)
        if reports.is_dir():
            mlflow.log_artifacts(str(reports), "validation/reports")
            index = Path(summary.get("data_docs") or reports / "data_docs" / "index.html")
            if index.is_file() and index.resolve().is_relative_to(reports.resolve()):
                docs = f"validation/reports/{index.resolve().relative_to(reports.resolve())}"
                mlflow.set_tag("validation.data_docs", docs)
        mlflow.set_tag("validation.success", str(bool(summary.get("success"))).lower())
        mlflow.log_metric("validation/failed_expectations", len(summary.get("failures", [])))
        experiment_id = MlflowClient().get_run(rid).info.experiment_id
    if docs is None:
        return None
    return f"{mlflow_run_link(tracking_uri(params), experiment_id, rid)}/artifacts/{docs}"


def final_metrics(summary: dict[str, Any]) -> dict[str, float]:
    """A finished run's ``metrics.json`` as MLflow metrics: the last evaluation's
    ``<target>/<metric>`` and ``mean_mAP`` (the names live runs use), plus the summary's."""
    values = _summary_metrics(summary)
    for target, result in (summary.get("targets") or {}).items():
        values.update({f"{target}/{k}": float(v) for k, v in result.items() if _number(v) is not None})
    if _number(summary.get("mean_mAP")) is not None:
        values["mean_mAP"] = float(summary["mean_mAP"])
    return values


def log_finished_run(
    params: Params,
    summary: dict[str, Any],
    *,
    experiment: str,
    variant: str,
    description: str | None = None,
    tags: dict[str, str] | None = None,
) -> str:
    """A run trained without tracking (an ablation run) as one MLflow run; returns its id.

    Params, tags (``variant``, ``seed`` and :func:`flows.run_info.run_tags`) and
    :func:`final_metrics` of ``summary``. The run is found again by its ``variant`` and
    ``seed`` tags, so logging it again updates it (changed metrics get a new value) rather
    than adding a twin; one logged with other params (trained again with other settings)
    is deleted and made anew, as MLflow params cannot change.
    """
    experiment_id = configure(params, experiment, description)
    client, seed = MlflowClient(), str(params.train.seed)
    found = client.search_runs([experiment_id], f"tags.variant = '{variant}' and tags.seed = '{seed}'", max_results=1)
    run = found[0] if found else None
    wanted = {k[:250]: _param_value(v) for k, v in flatten(params).items()}
    if run is not None and any(run.data.params.get(k, v) != v for k, v in wanted.items()):
        client.delete_run(run.info.run_id)
        run = None
    all_tags = {**run_tags(params), **(tags or {}), "variant": variant, "seed": seed}
    if run is None:
        name = default_run_name(params, variant)
        run = client.create_run(experiment_id, run_name=name, tags=all_tags)
    rid, step, now = run.info.run_id, int(summary.get("step") or 0), int(time.time() * 1000)
    params_new = [Param(k, v) for k, v in sorted(wanted.items()) if k not in run.data.params]
    for i in range(0, len(params_new), BATCH_PARAMS):
        client.log_batch(rid, params=params_new[i : i + BATCH_PARAMS])
    changed = {k: v for k, v in final_metrics(summary).items() if run.data.metrics.get(k) != v}
    client.log_batch(
        rid,
        metrics=[Metric(k, v, now, step) for k, v in sorted(changed.items())],
        tags=[RunTag(k, v) for k, v in all_tags.items() if run.data.tags.get(k) != v],
    )
    client.set_terminated(rid, "FINISHED")
    return rid
