"""The MLflow adapter: one run per pipeline run, live and post-hoc training logs.

With :mod:`flows.promotion` the only code that imports ``mlflow``. Names are fixed so that
runs compare side by side in the UI:

- params: every key of params.yaml, flattened (``train.lr``, ``data.sources.0.name``): for
  ``dynamix track`` those of the run directory's own ``params.json`` (the flow logs the same
  live); a command-line value that differs is a tag ``cli.<key>``;
- tags: ``git.commit``, ``git.dirty``, ``dvc.data_md5``, ``dynamix.preset``,
  ``dynamix.protocol`` (``D+M+C->market-syn,night-syn``), sources, targets, version,
  ``variant`` (``dynamix`` or the switched-off modules) and ``seed``;
  ``dynamix.run_fingerprint`` (checkpoint + params.json: tracking a directory again finds
  its run) and ``dynamix.checkpoint_sha256`` (the logged model's checkpoint: never logged twice);
- dataset inputs: ``data/raw`` (digest = its DVC md5) and each manifest (md5 of the file);
- metrics: ``train/<loss|lr|...>`` per step, ``relabel/<stat>`` per relabel window (also as
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
import dataclasses
import fcntl
import json
import logging
import math
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

import mlflow
from mlflow.entities import Experiment, Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from dynamix.config import Params, flatten, from_dict, to_dict
from dynamix.errors import DynamixError
from dynamix.io import file_sha256
from dynamix.train.callbacks import Callback
from flows.pipeline_report import mlflow_run_link
from flows.run_info import DataInput, data_inputs, experiment_description, run_tags
from flows.run_info import run_name as default_run_name
from flows.run_outputs import (
    input_example,
    load_trained_model,
    read_events,
    read_run_params,
    read_summary,
    run_fingerprint,
)

log = logging.getLogger(__name__)

SERVER_SCHEMES = ("http://", "https://", "databricks")
NOTE = "mlflow.note.content"  # the description the UI shows (and edits) for a run/experiment
# MLflow 3's UI opens an experiment in its GenAI view unless told it holds model training
KIND, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"
MAX_PARAM_VALUE = 6000  # MLflow's limit on a param value
BATCH_PARAMS, BATCH_METRICS = 100, 1000  # MLflow's log_batch limits


STORE_FIX = "make it writable, or point tracking.uri (or MLFLOW_TRACKING_URI) at a writable place"
ARTIFACT_FIX = (
    "make it writable, or set tracking.artifact_location to a writable folder "
    "(an existing experiment keeps its own: also name a new tracking.experiment)"
)
FINGERPRINT = "dynamix.run_fingerprint"  # the tag that finds a run directory's MLflow run again
CHECKPOINT_SHA = "dynamix.checkpoint_sha256"  # set with the model: the checkpoint it came from


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI; None for a server or another database."""
    return Path(uri[len("sqlite:///") :]) if uri.startswith("sqlite:///") else None


def tracking_uri(params: Params) -> str:
    """Env ``MLFLOW_TRACKING_URI``, else ``tracking.uri``; a relative sqlite path made absolute
    and its folder made (a folder that cannot be made is a one-line :class:`DynamixError`)."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or params.tracking.uri
    path = sqlite_path(uri)
    if path is not None:
        if not path.is_absolute():
            path = Path.cwd() / path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DynamixError(
                f"tracking store {path}: cannot make its folder {exc.filename or path.parent} "
                f"({exc.strerror or exc}); {STORE_FIX}"
            ) from exc
        uri = f"sqlite:///{path}"  # four slashes: sqlite:////abs/mlflow.db
    return uri


def check_store(uri: str) -> None:
    """Refuse a sqlite store MLflow could not write, before it fails with a traceback.

    sqlite writes the database file and journal files beside it, so both the file (when
    it exists) and its folder must be writable.
    """
    path = sqlite_path(uri)
    if path is None:
        return
    if path.exists() and not path.is_file():
        raise DynamixError(f"tracking store {path}: exists and is not a file; {STORE_FIX}")
    if path.exists() and not os.access(path, os.W_OK):
        raise DynamixError(f"tracking store {path}: read-only; {STORE_FIX}")
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise DynamixError(f"tracking store {path}: its folder {path.parent} is not writable; {STORE_FIX}")


def local_path(location: str) -> Path | None:
    """A ``file://`` URI or plain path as a path; None for remote locations (s3://, a server)."""
    parsed = urlparse(location)
    if parsed.scheme == "file":
        return Path(url2pathname(parsed.path))
    return Path(location) if parsed.scheme == "" or len(parsed.scheme) == 1 else None  # C:\ on Windows


def check_artifact_location(location: str | None) -> None:
    """Make a local artifact root (MLflow would on the first artifact) and refuse one that
    cannot be made or written, naming it, instead of a traceback halfway through a run."""
    path = local_path(location) if location else None
    if path is None:
        return
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DynamixError(
            f"artifact location {location}: cannot make {exc.filename or path} ({exc.strerror or exc}); {ARTIFACT_FIX}"
        ) from exc
    if not os.access(path, os.W_OK | os.X_OK):
        raise DynamixError(f"artifact location {location}: {path} is not writable; {ARTIFACT_FIX}")


_held_guard = threading.Lock()
_held: dict[str, tuple[threading.RLock, list[int]]] = {}  # db -> (in-process lock, [depth])


@contextlib.contextmanager
def store_lock(uri: str) -> Iterator[None]:
    """Hold ``<db>.lock`` (``fcntl.flock``) for a sqlite store; nothing for a server.

    MLflow creates the schema of a new sqlite store without any lock, so two processes
    opening it at once fail on each other's half-made tables; :func:`configure` opens the
    store under this lock, and ``dynamix track`` holds it throughout (one writer at a time
    is all sqlite allows anyway, and a run directory tracked twice at once then finds its
    run instead of making two). Re-entrant within a process; threads take turns.
    """
    db = sqlite_path(uri)
    if db is None:
        yield
        return
    with _held_guard:
        local, depth = _held.setdefault(str(db), (threading.RLock(), [0]))
    with local:
        depth[0] += 1
        try:
            if depth[0] > 1:
                yield
                return
            lock = db.with_name(db.name + ".lock")
            try:
                handle = lock.open("a")
            except OSError as exc:
                reason = exc.strerror or exc
                raise DynamixError(f"tracking store {db}: cannot write {lock} ({reason}); {STORE_FIX}") from exc
            with handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    log.info("tracking store %s: waiting for another process to finish with it", db)
                    fcntl.flock(handle, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)
        finally:
            depth[0] -= 1


@contextlib.contextmanager
def store_errors(uri: str) -> Iterator[None]:
    """Turn a store or artifact write that fails midway (a full disk, permissions changed
    under a run) into a one-line :class:`DynamixError` naming the path, not a traceback."""
    try:
        yield
    except OSError as exc:
        where = exc.filename or uri
        raise DynamixError(f"tracking: cannot write {where} ({exc.strerror or exc}); {STORE_FIX}") from exc
    except MlflowException as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DynamixError(f"tracking store {uri}: {first[:300]}") from exc


def artifact_location(params: Params, uri: str) -> str | None:
    """Where a new experiment keeps artifacts; None lets a tracking server decide."""
    loc = params.tracking.artifact_location
    if loc:
        return loc if "://" in loc else Path(loc).resolve().as_uri()
    if uri.startswith(SERVER_SCHEMES):
        return None
    base = Path(uri[len("sqlite:///") :]).parent if uri.startswith("sqlite:///") else Path.cwd()
    return (base / "mlartifacts").resolve().as_uri()


def _open_experiment(client: MlflowClient, name: str, params: Params, uri: str, note: dict[str, str]) -> Experiment:
    found = client.get_experiment_by_name(name)  # the first query creates a new store's schema
    if found is None:
        location = artifact_location(params, uri)
        check_artifact_location(location)
        try:
            client.create_experiment(name, artifact_location=location, tags=note)
        except MlflowException:  # created meanwhile by another process (a server store)
            log.debug("experiment %s: created concurrently", name)
        found = client.get_experiment_by_name(name)
    if found is None:
        raise DynamixError(f"tracking: cannot create MLflow experiment {name!r} at {uri}")
    return found


def configure(params: Params, experiment: str | None = None, description: str | None = None) -> str:
    """Point MLflow at the store of ``params`` and return the experiment id (made if new).

    ``experiment`` defaults to ``tracking.experiment``; ``description`` (default: what a
    pipeline experiment holds, :func:`flows.run_info.experiment_description`) becomes the
    experiment's note in the UI when it has none, so one written in the UI is kept.
    ``mlflow.set_tracking_uri`` also exports ``MLFLOW_TRACKING_URI``; it is put back so a
    later call with other params (tests, a second flow) is not overridden by our own value.
    An unwritable sqlite store or artifact location is a one-line :class:`DynamixError`
    naming the path; a new sqlite store is created under :func:`store_lock`.
    """
    uri = tracking_uri(params)
    check_store(uri)
    before = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    if before is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = before
    client, name = MlflowClient(), experiment or params.tracking.experiment
    note = {NOTE: description or experiment_description(params), KIND: MODEL_TRAINING}
    try:
        with store_lock(uri):
            found = _open_experiment(client, name, params, uri, note)
    except MlflowException as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DynamixError(f"tracking store {uri}: {first[:300]}; {STORE_FIX}") from exc
    check_artifact_location(found.artifact_location)
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


def param_values(params: Params | dict[str, Any]) -> dict[str, str]:
    """Every key, flattened (``train.lr``, ``data.sources.0.name``), as MLflow stores it.

    The same for :class:`Params` and for the plain dict of a run's ``params.json``, so the
    flow (live) and ``dynamix track`` (from the run directory) log identical params.
    """
    return {k[:250]: _param_value(v) for k, v in flatten(params).items()}


def log_params(params: Params | dict[str, Any], run_id: str, logged: dict[str, str] | None = None) -> None:
    """Every key of ``params`` not yet ``logged``, in batches within MLflow's limits.

    A logged param cannot change in MLflow; one that differs is left and warned about.
    """
    logged = logged or {}
    values = param_values(params)
    clash = sorted(k for k, v in values.items() if k in logged and logged[k] != v)
    if clash:
        log.warning("run %s: params %s were logged with other values; kept", run_id, ", ".join(clash[:5]))
    items = [Param(k, v) for k, v in sorted(values.items()) if k not in logged]
    client = MlflowClient()
    for i in range(0, len(items), BATCH_PARAMS):
        client.log_batch(run_id, params=items[i : i + BATCH_PARAMS])


def params_of_run(raw: dict[str, Any], params: Params, where: str) -> Params:
    """The run's own params (``raw``, its params.json) with ``params.tracking``: what it
    trained on decides tags, data and pictures; the command line decides where and how
    often to log. A params.json of an older schema falls back to ``params`` (warned)."""
    try:
        own = from_dict(Params, raw, where=where)
    except DynamixError as exc:
        log.warning("%s; tags and pictures use the command line's params", exc)
        return params
    return dataclasses.replace(own, tracking=params.tracking)


@contextlib.contextmanager
def start_tracked_run(
    params: Params, run_dir: str | os.PathLike[str], *, run_name: str | None = None
) -> Iterator[tuple[mlflow.ActiveRun, Params]]:
    """The MLflow run of a finished training directory (``dynamix track``), made or found.

    Lineage comes from the run, not the command line: the params are ``<run_dir>/params.json``
    (what the Prefect flow logs live for the same training), and so are the tags and the
    name; a command-line value that differs is kept as tag ``cli.<key>``, so nothing is
    hidden. The run is found again by the directory's fingerprint (tag
    ``dynamix.run_fingerprint``, :func:`flows.run_outputs.run_fingerprint`): tracking it
    twice, or after the flow logged it live, reuses that run. Yields the active run and the
    params to log the outputs with (:func:`params_of_run`).
    """
    run_dir = Path(run_dir)
    raw = read_run_params(run_dir)
    run_params = params_of_run(raw, params, f"{run_dir / 'params.json'}")
    values = param_values(raw)
    cli_tags = {f"cli.{k}"[:250]: v for k, v in param_values(params).items() if values.get(k) != v}
    fingerprint = run_fingerprint(run_dir)
    experiment_id = configure(params)
    client = MlflowClient()
    query = f"tags.`{FINGERPRINT}` = '{fingerprint}'"
    found = client.search_runs([experiment_id], query, max_results=1, order_by=["attributes.start_time ASC"])
    tags = {**run_tags(run_params), **cli_tags, FINGERPRINT: fingerprint}
    if found:
        run = found[0]
        log.info("%s: tracked before as MLflow run %s; updating it", run_dir, run.info.run_id)
        if run_name and run.info.run_name != run_name:
            client.update_run(run.info.run_id, name=run_name)
    else:
        name = run_name or default_run_name(run_params, tags["variant"])
        run = client.create_run(experiment_id, run_name=name, tags=tags)
    rid = run.info.run_id
    for key in run.data.tags:
        if key.startswith("cli.") and key not in cli_tags:  # the command line now agrees
            client.delete_tag(rid, key)
    changed = [RunTag(k, v) for k, v in tags.items() if run.data.tags.get(k) != v]
    client.log_batch(rid, tags=changed)
    log_params(raw, rid, run.data.params)
    client.log_dict(rid, raw, "config/params.json")
    with mlflow.start_run(run_id=rid) as active:
        yield active, run_params


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
    """Trainer events → MLflow metrics (and one JSON artifact per relabel window); also replays a log.

    Step metrics are logged at step 1 and every ``log_every`` steps; relabel and eval
    events always. ``buffered`` (replay) sends everything in large batches at :meth:`flush`.
    ``rounds_done``: relabel events logged before (a resumed training run: the number of
    relabel lines in its log.jsonl), so round numbers continue. ``logged``: the steps each
    metric already has in the run (:func:`logged_steps`); those are not logged again, so a
    replay into a run that has them adds nothing twice.
    """

    def __init__(
        self,
        run_id: str | None = None,
        log_every: int = 10,
        buffered: bool = False,
        rounds_done: int = 0,
        logged: dict[str, set[int]] | None = None,
    ) -> None:
        active = mlflow.active_run()
        if run_id is None and active is None:
            raise DynamixError("MlflowCallback: no active MLflow run and no run_id given")
        self.run_id = run_id or active.info.run_id
        self.log_every, self.buffered = max(int(log_every), 1), buffered
        self.client = MlflowClient()
        self.rounds = int(rounds_done)
        self.logged = logged or {}
        self.pending: list[Metric] = []

    def _add(self, step: int, values: dict[str, Any]) -> None:
        now = int(time.time() * 1000)
        for key, value in values.items():
            number = _number(value)
            if number is not None and int(step) not in self.logged.get(key, ()):
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
        # NaN = nothing to measure in this window (e.g. no merge to score): not a point on a curve
        scalars = {k: v for k, v in stats.items() if isinstance(v, int | float) and math.isfinite(v) and k != "step"}
        values = {"relabel/round": self.rounds, **{f"relabel/{k}": v for k, v in scalars.items()}}
        self._add(step, values)
        record = {"step": step, "round": self.rounds, **scalars}
        name = f"relabel/round_{self.rounds:02d}_step_{step}.json"
        self.client.log_dict(self.run_id, record, name)

    def on_eval(self, step: int, metrics: dict[str, Any]) -> None:
        self._add(step, metrics)


def logged_steps(run_id: str) -> dict[str, set[int]]:
    """``{metric: {steps}}`` already in the run (one history query per metric)."""
    client = MlflowClient()
    keys = client.get_run(run_id).data.metrics
    return {key: {m.step for m in client.get_metric_history(run_id, key)} for key in keys}


def log_run_from_dir(run_dir: str | os.PathLike[str], params: Params, *, run_id: str | None = None) -> int:
    """Replay ``<run_dir>/log.jsonl`` into the run (training ran without the callback).

    Same names, steps and sampling as the live :class:`MlflowCallback`; a (metric, step)
    the run already has (tracked before, or logged live by the flow) is skipped. Returns
    the number of events read.
    """
    with in_run(run_id) as rid:
        logged = logged_steps(rid)
    callback = MlflowCallback(rid, params.tracking.log_every, buffered=True, logged=logged)
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
    out = {"best/selection_score": summary.get("best_selection_score"), "best/step": summary.get("best_step")}
    out["relabel/rounds"] = summary.get("relabel_rounds")
    out["relabel/images_kept"] = summary.get("single_camera_images_kept")
    for when, quality in (summary.get("label_quality") or {}).items():
        out.update({f"label_quality/{when}/{k}": v for k, v in quality.items()})
    return {k: float(v) for k, v in out.items() if _number(v) is not None}


def log_reid_model(trained: Any, params: Params, *, run_id: str | None = None) -> str:
    """Log ``trained.model`` as ``model`` (pt2, with signature + input example); its URI.

    Tags the run with the model's URI and the sha256 of the checkpoint it came from, by
    which a later ``track`` of the same weights knows the model is already there.
    """
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
                CHECKPOINT_SHA: file_sha256(trained.checkpoint),
            }
        )
    return info.model_uri


def logged_model_uri(tags: dict[str, str], checkpoint: str | os.PathLike[str]) -> str | None:
    """The URI of the model a run already holds for these very checkpoint bytes, if any.

    Matched by the checkpoint's sha256 (tag ``dynamix.checkpoint_sha256``), and only while
    that logged model still exists and is complete (not deleted, not a half-logged one of
    a killed ``track``).
    """
    uri = tags.get("dynamix.model_uri")
    if not uri or tags.get(CHECKPOINT_SHA) != file_sha256(checkpoint):
        return None
    if uri.startswith("models:/"):
        try:
            model = MlflowClient().get_logged_model(uri[len("models:/") :])
        except MlflowException:
            return None
        if str(model.status) not in ("READY", "LoggedModelStatus.READY"):
            return None
    return uri


def log_data_inputs(params: Params, *, run_id: str | None = None) -> list[DataInput]:
    """The data version as MLflow dataset inputs (the run page's Datasets panel).

    ``data/raw`` with digest = its DVC md5 from ``data.dvc`` and the DVC file and remote as
    input tags; each manifest with the md5 of its file (:func:`flows.run_info.data_inputs`).
    Logging the same inputs again adds nothing (MLflow keys them by name and digest).
    """
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.data.sources import LocalArtifactDatasetSource  # registered by mlflow.data at import

    inputs = data_inputs(params)
    if inputs:
        datasets = [MetaDataset(LocalArtifactDatasetSource(i.source), name=i.name, digest=i.digest) for i in inputs]
        with in_run(run_id):
            mlflow.log_inputs(datasets, [i.context for i in inputs], [i.tags or None for i in inputs])
    return inputs


def log_training_outputs(
    run_dir: str | os.PathLike[str],
    params: Params,
    *,
    log_model: bool = True,
    run_id: str | None = None,
    plots_dir: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Log a finished run directory: summary metrics, data inputs, checkpoints, plots, the model.

    Idempotent: metrics whose value the run already has are not logged again, artifacts
    overwrite their own paths, and the model is not logged again when the run holds one of
    the same checkpoint bytes (:func:`logged_model_uri`). Tags the run with the directory's
    fingerprint, so ``dynamix track`` of it later finds this run. Returns ``{"metrics":
    {target: {...}}, "model_uri", "checkpoint", "step", "run_fingerprint",
    "checkpoint_sha256"}``: the metrics are those of the logged model (its checkpoint's
    evaluation), the ones the promotion gate judges.
    """
    from flows.plots import write_training_plots
    from flows.run_outputs import write_ranked_lists

    run_dir = Path(run_dir)
    summary = read_summary(run_dir)
    trained = load_trained_model(run_dir)
    with in_run(run_id) as rid:
        client = MlflowClient()
        run = client.get_run(rid)
        logged = run.data.metrics
        values = _summary_metrics(summary)
        for target, result in (summary.get("targets") or {}).items():
            final = {f"{target}/{k}": v for k, v in result.items()}
            values.update({k: v for k, v in final.items() if k not in logged})  # not replayed
        for target, result in trained.metrics.items():
            values.update({f"best/{target}/{k}": v for k, v in result.items()})
        fresh = {k: float(v) for k, v in values.items() if logged.get(k) != float(v)}  # tracked again: not twice
        if fresh:
            mlflow.log_metrics(fresh, step=int(summary["step"]))
        mlflow.set_tag(FINGERPRINT, run_fingerprint(run_dir))
        log_data_inputs(params, run_id=rid)
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
        model_uri = None
        if log_model:
            model_uri = logged_model_uri(run.data.tags, trained.checkpoint)
            if model_uri is None:
                model_uri = log_reid_model(trained, params, run_id=rid)
            else:
                log.info("run %s already holds the model of %s: not logged again", rid, trained.checkpoint)
    return {
        "metrics": trained.metrics,
        "model_uri": model_uri,
        "checkpoint": trained.checkpoint.name,
        "step": trained.step,
        "run_fingerprint": run_fingerprint(run_dir),
        "checkpoint_sha256": file_sha256(trained.checkpoint),
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
        logged = MlflowClient().get_run(rid)
        failed = float(len(summary.get("failures", [])))
        if logged.data.metrics.get("validation/failed_expectations") != failed:  # a re-track adds no point
            mlflow.log_metric("validation/failed_expectations", failed)
        experiment_id = logged.info.experiment_id
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
