"""The promotion gate: register every finished model, alias only the good ones ``champion``.

:func:`decide` is pure (metrics in, decision out). :func:`register_and_promote` applies
it in the MLflow Model Registry: a new version per run (its per-target metrics kept as
version tags, so the next candidate can be compared without the old run), the alias moved
only on acceptance, and the decision written as tags on the version and on the run:
``promotion=accepted|rejected`` and ``promotion_reason=rejected: market-syn mAP 0.41 < 0.45``.
Rerunning for the same run reuses its version and its stored decision, so a rejected model
never gets the alias, however often a flow is retried.

Both gate paths (the DVC ``promote`` stage via ``dynamix promote`` and the Prefect flow's
``evaluate`` → ``promote`` tasks) judge the numbers of :func:`candidate_evaluation`: one
function, one checkpoint, so the two cannot disagree about the model they promote.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from dynamix.config import PROMOTION_METRICS, Params, PromotionConfig
from dynamix.errors import DynamixError

log = logging.getLogger(__name__)

MAX_TAG_VALUE = 5000  # MLflow's limit on a model-version tag value

Metrics = dict[str, dict[str, float]]  # {target: {metric: value}}


@dataclass(frozen=True)
class Decision:
    """``promote`` and, when rejected, one readable reason per failed check."""

    promote: bool
    reasons: tuple[str, ...]
    champion_version: str | None = None

    @property
    def summary(self) -> str:
        """The ``promotion_reason`` tag: ``rejected: <reason>; <reason>`` or ``accepted: ...``."""
        if not self.promote:
            return "rejected: " + "; ".join(self.reasons)
        if self.champion_version is None:
            return "accepted: every target clears its thresholds (first champion)"
        return (
            f"accepted: every target clears its thresholds and none regresses against champion v{self.champion_version}"
        )


def candidate_evaluation(params: Params) -> dict[str, Any]:
    """The evaluation report of the model being promoted: ``<train.out_dir>/best.pt``.

    The checkpoint the tracking step logs as the model, scored on every target with the
    ``train.eval_model`` encoder by :func:`~dynamix.infer.evaluate.evaluate_checkpoint`.
    The trainer's own evaluation of it is reused while it still fits these target rows and
    settings (no feature pass, ``source: recorded``); a rebuilt manifest or another metric
    means a fresh feature pass (``source: extracted``). Its ``targets`` are what
    :func:`register_and_promote` judges.
    """
    from dynamix.infer.evaluate import evaluate_checkpoint

    best = Path(params.train.out_dir) / "best.pt"
    return evaluate_checkpoint(params, best, encoder=params.train.eval_model, reuse_recorded=True)


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


def decide(
    metrics: Metrics,
    champion: Metrics | None,
    cfg: PromotionConfig,
    *,
    targets: Iterable[str] | None = None,
    champion_version: str | None = None,
) -> Decision:
    """Accept only if every target clears ``cfg``'s minimums and none regresses.

    ``targets`` are the domains that must be present (default: those in ``metrics`` and
    those named in ``cfg.thresholds``). A regression is a gated metric more than
    ``cfg.max_regression`` below the champion's on the same target (reported only for a
    metric that clears its threshold); targets the champion was never measured on are
    not compared.
    """
    names = (
        list(targets) if targets is not None else sorted(set(metrics) | {t for t in cfg.thresholds if t != "default"})
    )
    reasons: list[str] = []
    for target in names:
        got = metrics.get(target)
        if not got:
            reasons.append(f"{target}: no metrics")
            continue
        old = (champion or {}).get(target) or {}
        for metric, minimum in cfg.minimums(target).items():
            value, before = got.get(metric), old.get(metric)
            if value is None or not math.isfinite(value):
                reasons.append(f"{target} {metric} missing")
            elif value < minimum:  # one reason per metric: the threshold comes first
                shown, limit = _threshold_text(value, minimum)
                reasons.append(f"{target} {metric} {shown} < {limit}")
            elif before is not None and value < before - cfg.max_regression - 1e-12:
                now, then = _regression_text(value, before, cfg.max_regression)
                reasons.append(
                    f"{target} {metric} {now} regresses champion v{champion_version} {then} "
                    f"by more than {cfg.max_regression:g}"
                )
    return Decision(not reasons, tuple(reasons), champion_version)


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
    }


def register_and_promote(params: Params, run_id: str, metrics: Metrics) -> dict[str, Any]:
    """Register the run's model, decide, move the alias only on acceptance; idempotent.

    Returns ``{model, version, run_id, promoted, reason, reasons, champion_version,
    metrics}``; ``champion_version`` is the alias's version after the decision.
    """
    from flows.tracking import configure

    configure(params)
    client, cfg = MlflowClient(), params.promotion
    name = params.tracking.registered_model
    try:
        client.create_registered_model(name, description="DynaMix re-ID encoder (dynamix train)")
    except MlflowException:
        pass  # exists already
    found = client.search_model_versions(f"name='{name}' and run_id='{run_id}'")
    version = min(found, key=lambda v: int(v.version)) if found else None
    if version is not None and (version.tags or {}).get("promotion") in ("accepted", "rejected"):
        log.info("run %s is version %s of %s, decided before", run_id, version.version, name)
        return _result(name, version, run_id, _champion(client, name, cfg.alias))
    if version is None:
        source = _model_uri(client, run_id)
        version = client.create_model_version(
            name, source, run_id=run_id, tags=metric_tags(metrics), model_id=source.split("/")[-1]
        )
    champion = _champion(client, name, cfg.alias)
    champion_metrics = None if champion is None else metrics_from_tags(champion.tags or {})
    decision = decide(
        metrics,
        champion_metrics,
        cfg,
        targets=[s.name for s in params.data.targets],
        champion_version=None if champion is None else champion.version,
    )
    if decision.promote:  # alias before tag: a crash in between is decided again, identically
        client.set_registered_model_alias(name, cfg.alias, version.version)
    verdict = "accepted" if decision.promote else "rejected"
    tags = {
        "promotion": verdict,
        "promotion_reason": decision.summary[:MAX_TAG_VALUE],
        "promotion_reasons": json.dumps(list(decision.reasons))[:MAX_TAG_VALUE],
        "promotion_champion_before": "none" if champion is None else str(champion.version),
    }
    for key, value in tags.items():
        client.set_model_version_tag(name, version.version, key, value)
    for key in ("promotion", "promotion_reason"):
        client.set_tag(run_id, key, tags[key])
    client.set_tag(run_id, "registered_version", f"{name}/{version.version}")
    log.info("%s v%s: %s", name, version.version, decision.summary)
    version = client.get_model_version(name, version.version)
    return _result(name, version, run_id, _champion(client, name, cfg.alias))
