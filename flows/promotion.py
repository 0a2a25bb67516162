"""The promotion gate: register every finished model, alias only the good ones ``champion``.

:func:`decide` is pure (metrics in, decision out). :func:`register_and_promote` applies
it in the MLflow Model Registry: a new version per run (its per-target metrics kept as
version tags, so the next candidate can be compared without the old run), the alias moved
only on acceptance, and the decision written as tags on the version and on the run:
``promotion=accepted|rejected`` and ``promotion_reason=rejected: market-syn mAP 0.41 < 0.45``.

What the gate guarantees:

- **Decisions are bound to the weights.** Every version carries ``weights_sha256``, a
  canonical hash of the encoder weights that were scored (:func:`weights_sha256`: tensor
  names, dtypes, shapes and bytes, so re-saving or re-tracking the same weights keeps the
  hash). Weights rejected once stay rejected under any run, version or later threshold,
  unless ``override_reason`` is given (``dynamix promote --override-reason``, the flow's
  ``override_reason``): it is kept on the version (``promotion_override_reason``) and in
  ``metrics/promotion.json``, and the weights are judged again by the current gate.
- **Relative to the baseline.** Besides the absolute thresholds, every gated metric must
  beat the colour baseline (``promotion.baseline``, from ``dynamix baseline``) by more than
  ``promotion.baseline_margin``, on the same data version (:func:`gate_baseline`): a
  baseline computed on other target data or settings is refused, never compared.
- **Serialised.** The decide-and-alias step runs under an exclusive file lock beside the
  tracking store (:func:`promotion_lock`), so two promotions (CLI, DVC or flow, in any
  mix) on one machine never both see "no champion" or move the alias to a worse model; the
  flow's task also holds a Prefect global concurrency slot (``flows.pipeline``).

Both gate paths (the DVC ``promote`` stage via ``dynamix promote`` and the Prefect flow's
``evaluate`` → ``promote`` tasks) judge the report of :func:`candidate_evaluation` through
:func:`promote_candidate`: one function, one checkpoint, so the two cannot disagree about
the model they promote.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import math
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from dynamix.config import PROMOTION_METRICS, Params, PromotionConfig
from dynamix.errors import DynamixError

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

MAX_TAG_VALUE = 5000  # MLflow's limit on a model-version tag value
WEIGHTS_TAG = "weights_sha256"  # on every version: the decision belongs to these weights
OVERRIDE_TAG = "promotion_override_reason"
LOCK_TIMEOUT_S = 600.0  # a promotion takes seconds; a lock held this long is a stuck process

Metrics = dict[str, dict[str, float]]  # {target: {metric: value}}


@dataclass(frozen=True)
class Decision:
    """``promote`` and, when rejected, one readable reason per failed check."""

    promote: bool
    reasons: tuple[str, ...]
    champion_version: str | None = None
    baseline_checked: bool = False

    @property
    def summary(self) -> str:
        """The ``promotion_reason`` tag: ``rejected: <reason>; <reason>`` or ``accepted: ...``."""
        if not self.promote:
            return "rejected: " + "; ".join(self.reasons)
        clears = "every target clears its thresholds" + (" and beats the baseline" if self.baseline_checked else "")
        if self.champion_version is None:
            return f"accepted: {clears} (first champion)"
        return f"accepted: {clears} and none regresses against champion v{self.champion_version}"


def weights_sha256(weights: dict[str, torch.Tensor]) -> str:
    """Canonical sha256 of a state dict: every tensor's name, dtype, shape and bytes, by name.

    Not the checkpoint file's bytes: those change when the same weights are saved again
    (another step counter, optimizer state, pickle layout); these do not, so a re-saved or
    re-tracked copy of rejected weights is still recognised.
    """
    import torch

    digest = hashlib.sha256()
    for name in sorted(weights):
        tensor = weights[name].detach().to("cpu").contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def checkpoint_weights_sha256(path: str | Path, encoder: str) -> str:
    """:func:`weights_sha256` of the ``encoder`` (momentum|online) weights in a checkpoint."""
    from dynamix.infer.checkpoint import encoder_weights, read_checkpoint

    return weights_sha256(encoder_weights(read_checkpoint(path), encoder))


def candidate_evaluation(params: Params) -> dict[str, Any]:
    """The evaluation report of the model being promoted: ``<train.out_dir>/best.pt``.

    The checkpoint the tracking step logs as the model, scored on every target with the
    ``train.eval_model`` encoder by :func:`~dynamix.infer.evaluate.evaluate_checkpoint`.
    The trainer's own evaluation of it is reused while it still fits these target rows and
    settings (no feature pass, ``source: recorded``); a rebuilt manifest or another metric
    means a fresh feature pass (``source: extracted``). Its ``targets`` are what
    :func:`register_and_promote` judges; ``weights_sha256`` names the weights scored (the
    same hash before and after scoring, so a ``best.pt`` replaced meanwhile is an error)
    and ``data_version`` the target data (:func:`dynamix.baseline.data_version`).
    """
    from dynamix.baseline import data_version
    from dynamix.infer.evaluate import evaluate_checkpoint

    best = Path(params.train.out_dir) / "best.pt"
    encoder = params.train.eval_model
    before = checkpoint_weights_sha256(best, encoder)
    report = evaluate_checkpoint(params, best, encoder=encoder, reuse_recorded=True)
    if checkpoint_weights_sha256(best, encoder) != before:
        raise DynamixError(f"{best}: replaced while it was evaluated (is a training still running?); promote again")
    return {**report, "weights_sha256": before, "data_version": data_version(params)}


def gate_baseline(params: Params, version: dict[str, Any], *, compute_if_stale: bool = False) -> dict[str, Any]:
    """The baseline a candidate evaluated on data ``version`` must beat: ``{"metrics", "source"}``.

    Read from ``promotion.baseline`` when that file records the same data version
    (:func:`dynamix.baseline.version_differences`); otherwise a one-line
    :class:`DynamixError` saying what differs: numbers of other data are never compared.
    The DVC path keeps that refusal (the ``baseline`` stage owns the file, so a stale one is
    a pipeline to rerun). ``compute_if_stale`` (the Prefect flow, which has no baseline
    stage) instead scores the colour baseline on the current data, in memory
    (``source: computed``); the file is left as it is.
    """
    from dynamix.baseline import DATA_VERSION_KEY, evaluate_targets, version_differences

    path = Path(params.promotion.baseline)
    fix = "run `dynamix baseline` (the DVC baseline stage) on the current data first"
    try:
        raw = json.loads(path.read_text())
        if not isinstance(raw, dict):
            raise ValueError("not a JSON object")
    except FileNotFoundError:
        problem = f"{path}: not found; the gate needs the baseline; {fix}"
    except (OSError, ValueError) as exc:
        problem = f"{path}: unreadable ({exc}); {fix}"
    else:
        differences = version_differences(raw.get(DATA_VERSION_KEY), version)
        if not differences:
            metrics = {t: v for t, v in raw.items() if t != DATA_VERSION_KEY and isinstance(v, dict)}
            return {"metrics": metrics, "source": str(path)}
        problem = (
            f"{path}: computed on another data version than the model is judged on "
            f"({'; '.join(differences)}); refusing to compare; {fix}"
        )
    if not compute_if_stale:
        raise DynamixError(problem)
    log.info("%s: computing the baseline on the current data instead", problem.split(";")[0])
    return {"metrics": evaluate_targets(params), "source": "computed"}


def _regression_text(value: float, before: float, margin: float) -> tuple[str, str]:
    """Both numbers with two decimals, or more until their shown gap exceeds ``margin``."""
    digits = 2
    while digits < 6 and (float(f"{before:.{digits}f}") - float(f"{value:.{digits}f}") <= margin + 1e-12):
        digits += 1
    return f"{value:.{digits}f}", f"{before:.{digits}f}"


def _threshold_text(value: float, minimum: float) -> tuple[str, str]:
    shown = f"{minimum:g}"  # the threshold as configured
    digits = max(2, len(shown.split(".")[1]) if "." in shown else 2)
    while digits < 6 and float(f"{value:.{digits}f}") >= minimum:
        digits += 1  # 0.0849 must not print as 0.085 < 0.085
    return f"{value:.{digits}f}", shown


def _baseline_text(value: float, base: float) -> tuple[str, str]:
    """Both numbers with two decimals, or more until they no longer print alike (unless equal)."""
    digits = 2
    while digits < 6 and f"{value:.{digits}f}" == f"{base:.{digits}f}" and value != base:
        digits += 1
    return f"{value:.{digits}f}", f"{base:.{digits}f}"


def decide(
    metrics: Metrics,
    champion: Metrics | None,
    cfg: PromotionConfig,
    *,
    targets: Iterable[str] | None = None,
    champion_version: str | None = None,
    baseline: Metrics | None = None,
) -> Decision:
    """Accept only if every target clears ``cfg``'s minimums, beats ``baseline`` and none regresses.

    ``targets`` are the domains that must be present (default: those in ``metrics`` and
    those named in ``cfg.thresholds``). Each gated metric (those of ``cfg.minimums``) gets
    at most one reason, the first failing of: its threshold; beating ``baseline`` (the
    colour descriptor on the same data) by more than ``cfg.baseline_margin``, skipped when
    ``baseline`` is None; no fall of more than ``cfg.max_regression`` below the champion's
    (targets the champion was never measured on are not compared). Reasons are listed
    thresholds first, then the baseline, then the champion.
    """
    names = (
        list(targets) if targets is not None else sorted(set(metrics) | {t for t in cfg.thresholds if t != "default"})
    )
    below: list[str] = []  # threshold and missing-metric reasons
    trailing: list[str] = []  # does not beat the baseline
    regressing: list[str] = []  # falls behind the champion
    for target in names:
        got = metrics.get(target)
        if not got:
            below.append(f"{target}: no metrics")
            continue
        old = (champion or {}).get(target) or {}
        base = None if baseline is None else baseline.get(target) or {}
        for metric, minimum in cfg.minimums(target).items():
            value, before = got.get(metric), old.get(metric)
            if value is None or not math.isfinite(value):
                below.append(f"{target} {metric} missing")
            elif value < minimum:
                shown, limit = _threshold_text(value, minimum)
                below.append(f"{target} {metric} {shown} < {limit}")
            elif base is not None and not _beats(value, base.get(metric), cfg.baseline_margin):
                trailing.append(_trailing_text(target, metric, value, base.get(metric), cfg.baseline_margin))
            elif before is not None and value < before - cfg.max_regression - 1e-12:
                now, then = _regression_text(value, before, cfg.max_regression)
                regressing.append(
                    f"{target} {metric} {now} regresses champion v{champion_version} {then} "
                    f"by more than {cfg.max_regression:g}"
                )
    reasons = (*below, *trailing, *regressing)
    return Decision(not reasons, reasons, champion_version, baseline_checked=baseline is not None)


def _beats(value: float, base: Any, margin: float) -> bool:
    """``value`` > ``base`` + ``margin``; a baseline without this metric beats nothing."""
    return isinstance(base, int | float) and math.isfinite(base) and value > float(base) + margin + 1e-12


def _trailing_text(target: str, metric: str, value: float, base: Any, margin: float) -> str:
    if not isinstance(base, int | float) or not math.isfinite(base):
        return f"{target} {metric}: no baseline value to beat"
    shown, floor = _baseline_text(value, float(base))
    if margin < 0:
        return f"{target} {metric} {shown} trails baseline {floor} by {-margin:g} or more"
    by = f" by more than {margin:g}" if margin > 0 else ""
    return f"{target} {metric} {shown} does not beat baseline {floor}{by}"


def metric_tags(metrics: Metrics) -> dict[str, str]:
    """``{"market-syn/mAP": "0.41..."}``: a version's metrics, stored on the version."""
    return {
        f"{target}/{k}": repr(float(v))
        for target, values in metrics.items()
        for k, v in values.items()
        if k in PROMOTION_METRICS
    }


def metrics_from_tags(tags: dict[str, str]) -> Metrics:
    out: Metrics = {}
    for key, value in tags.items():
        target, _, metric = key.rpartition("/")
        if target and metric in PROMOTION_METRICS:
            out.setdefault(target, {})[metric] = float(value)
    return out


def _champion(client: MlflowClient, name: str, alias: str) -> Any | None:
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def _model_uri(client: MlflowClient, run_id: str) -> str:
    """``models:/<id>`` of the model named ``model`` that the run logged."""
    run = client.get_run(run_id)
    for output in run.outputs.model_outputs if run.outputs else []:
        if client.get_logged_model(output.model_id).name == "model":
            return f"models:/{output.model_id}"
    raise DynamixError(
        f"MLflow run {run_id} has no logged model 'model'; run `dynamix track` (with the "
        "model) on the training run first"
    )


def _result(name: str, version: Any, run_id: str, champion: Any | None) -> dict[str, Any]:
    tags = version.tags or {}
    return {
        "model": name,
        "version": int(version.version),
        "run_id": run_id,
        "promoted": tags.get("promotion") == "accepted",
        "reason": tags.get("promotion_reason", ""),
        "reasons": json.loads(tags.get("promotion_reasons", "[]")),
        "champion_version": None if champion is None else int(champion.version),
        "metrics": metrics_from_tags(tags),
        "weights_sha256": tags.get(WEIGHTS_TAG),
        "baseline": json.loads(tags.get("promotion_baseline", "null")),
        "baseline_source": tags.get("promotion_baseline_source"),
        "override_reason": tags.get(OVERRIDE_TAG),
    }


def lock_path(params: Params) -> Path:
    """The file every promotion into this tracking store locks: beside a sqlite store or in a
    file store; for a tracking server, one per server URI in the temp folder (this machine)."""
    from flows.tracking import tracking_uri

    uri = tracking_uri(params)
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///") :].split("?")[0])
        return db.with_name(db.name + ".promote.lock")
    if uri.startswith("file:") or "://" not in uri:
        return Path(uri.removeprefix("file://").removeprefix("file:")) / ".promote.lock"
    return Path(tempfile.gettempdir()) / f"dynamix-promote-{hashlib.sha256(uri.encode()).hexdigest()[:16]}.lock"


@contextmanager
def promotion_lock(params: Params, timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[Path]:
    """Hold the exclusive ``flock`` of :func:`lock_path` (waiting for another promotion).

    ``flock`` belongs to the open file, so it excludes threads and processes alike and is
    released by the kernel if the holder dies: a killed promotion never leaves a stale lock.
    """
    path = lock_path(params)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = path.open("a")
    except OSError as exc:
        raise DynamixError(
            f"{path}: cannot open the promotion lock ({exc.strerror or exc}); make its folder writable"
        ) from exc
    with handle:
        deadline, waiting = time.monotonic() + timeout_s, False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise DynamixError(
                        f"{path}: another promotion has held this lock for over {timeout_s:g} s; "
                        "wait for it or stop it, then promote again"
                    ) from None
                if not waiting:
                    log.info("waiting for another promotion to finish (%s)", path)
                    waiting = True
                time.sleep(0.05)
        try:
            yield path
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _prior_rejection(versions: list[Any], sha: str, own: str | None) -> Any | None:
    """The first other version of the same weights that was rejected, if any."""
    rejected = [
        v
        for v in versions
        if (v.tags or {}).get(WEIGHTS_TAG) == sha
        and (v.tags or {}).get("promotion") == "rejected"
        and str(v.version) != str(own)
    ]
    return min(rejected, key=lambda v: int(v.version)) if rejected else None


def register_and_promote(
    params: Params,
    run_id: str,
    metrics: Metrics,
    *,
    weights_sha256: str,
    baseline: Metrics,
    baseline_source: str = "",
    override_reason: str | None = None,
    checkpoint: str | Path | None = None,
) -> dict[str, Any]:
    """Register the run's model, decide, move the alias only on acceptance; idempotent.

    ``weights_sha256`` identifies the weights ``metrics`` belong to (:func:`weights_sha256`),
    ``baseline`` the numbers they must beat (:func:`gate_baseline`). Everything from
    reading the registry to the last tag runs under :func:`promotion_lock`. Rerunning for a
    run reuses its version and stored decision; weights rejected under any earlier version
    are rejected again, without a new judgement, unless ``override_reason`` is given (then
    judged by the current gate, the reason kept on the version). With ``checkpoint`` (the
    file judged), a run whose model was logged from other checkpoint bytes is refused.

    Returns ``{model, version, run_id, promoted, reason, reasons, champion_version,
    metrics, weights_sha256, baseline, baseline_source, override_reason}``;
    ``champion_version`` is the alias's version after the decision.
    """
    from flows.tracking import configure

    override = (override_reason or "").strip() or None
    if override_reason is not None and override is None:
        raise DynamixError("--override-reason: give the reason the override is logged with")
    configure(params)
    client, cfg = MlflowClient(), params.promotion
    name = params.tracking.registered_model
    if checkpoint is not None:
        _check_logged_from(client, run_id, Path(checkpoint))
    with promotion_lock(params):
        try:
            client.create_registered_model(name, description="DynaMix re-ID encoder (dynamix train)")
        except MlflowException:
            pass  # exists already
        versions = list(client.search_model_versions(f"name='{name}'"))
        own = [v for v in versions if v.run_id == run_id]
        version = min(own, key=lambda v: int(v.version)) if own else None
        if version is not None:
            tags = version.tags or {}
            held = tags.get(WEIGHTS_TAG)
            if held and held != weights_sha256:
                raise DynamixError(
                    f"MLflow run {run_id} is {name} v{version.version} with weights {held[:12]}, but the model "
                    f"judged now has weights {weights_sha256[:12]}: track the current best.pt (`dynamix track`) "
                    "and promote that run"
                )
            reopened = override is not None and tags.get("promotion") == "rejected"
            if tags.get("promotion") in ("accepted", "rejected") and not reopened:
                log.info("run %s is version %s of %s, decided before", run_id, version.version, name)
                return _result(name, version, run_id, _champion(client, name, cfg.alias))
        if version is None:
            source = _model_uri(client, run_id)
            version = client.create_model_version(
                name,
                source,
                run_id=run_id,
                tags={**metric_tags(metrics), WEIGHTS_TAG: weights_sha256},
                model_id=source.split("/")[-1],
            )
        champion = _champion(client, name, cfg.alias)
        prior = _prior_rejection(versions, weights_sha256, version.version)
        if prior is not None and override is None:
            before = (prior.tags or {}).get("promotion_reason", "").removeprefix("rejected: ")
            decision = Decision(
                False,
                (
                    f"weights {weights_sha256[:12]} were rejected before as v{prior.version} ({before}); "
                    "pass --override-reason to judge them again",
                ),
            )
        else:
            decision = decide(
                metrics,
                None if champion is None else metrics_from_tags(champion.tags or {}),
                cfg,
                targets=[s.name for s in params.data.targets],
                champion_version=None if champion is None else champion.version,
                baseline=baseline,
            )
        if decision.promote:  # alias before tag: a crash in between is decided again, identically
            client.set_registered_model_alias(name, cfg.alias, version.version)
        gated = {
            t: {m: float(v) for m, v in (baseline.get(t) or {}).items() if m in cfg.minimums(t)}
            for t in (s.name for s in params.data.targets)
        }
        tags = {
            WEIGHTS_TAG: weights_sha256,
            "promotion": "accepted" if decision.promote else "rejected",
            "promotion_reason": decision.summary[:MAX_TAG_VALUE],
            "promotion_reasons": json.dumps(list(decision.reasons))[:MAX_TAG_VALUE],
            "promotion_champion_before": "none" if champion is None else str(champion.version),
            "promotion_baseline": json.dumps(gated, sort_keys=True)[:MAX_TAG_VALUE],
            "promotion_baseline_source": baseline_source or "given",
        }
        if override is not None:
            tags[OVERRIDE_TAG] = override[:MAX_TAG_VALUE]
        for key, value in tags.items():
            client.set_model_version_tag(name, version.version, key, value)
        for key in ("promotion", "promotion_reason", WEIGHTS_TAG):
            client.set_tag(run_id, key, tags[key])
        client.set_tag(run_id, "registered_version", f"{name}/{version.version}")
        log.info("%s v%s: %s", name, version.version, decision.summary)
        version = client.get_model_version(name, version.version)
        return _result(name, version, run_id, _champion(client, name, cfg.alias))


def _check_logged_from(client: MlflowClient, run_id: str, checkpoint: Path) -> None:
    """Refuse a run whose logged model came from other bytes than the checkpoint judged
    (a stale ``metrics/tracking.json``, a ``best.pt`` retrained since ``track``)."""
    from dynamix.io import file_sha256
    from flows.tracking import CHECKPOINT_SHA

    logged = client.get_run(run_id).data.tags.get(CHECKPOINT_SHA)
    if logged and checkpoint.is_file() and logged != file_sha256(checkpoint):
        raise DynamixError(
            f"MLflow run {run_id} logged its model from another {checkpoint.name} ({logged[:12]}) than the "
            f"{checkpoint} judged now ({file_sha256(checkpoint)[:12]}): run `dynamix track` on it first"
        )


def promote_candidate(
    params: Params,
    run_id: str,
    evaluation: dict[str, Any],
    *,
    override_reason: str | None = None,
    compute_baseline: bool = False,
) -> dict[str, Any]:
    """The gate both paths run: ``evaluation`` (:func:`candidate_evaluation`) against the
    baseline of its data version (:func:`gate_baseline`), then :func:`register_and_promote`."""
    baseline = gate_baseline(params, evaluation["data_version"], compute_if_stale=compute_baseline)
    return register_and_promote(
        params,
        run_id,
        evaluation["targets"],
        weights_sha256=evaluation["weights_sha256"],
        baseline=baseline["metrics"],
        baseline_source=baseline["source"],
        override_reason=override_reason,
        checkpoint=evaluation.get("checkpoint"),
    )
