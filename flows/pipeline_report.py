"""What the pipeline shows when it ends: the Prefect table and markdown artifacts.

Pure functions from the flow's results to artifact content (no Prefect, no MLflow), so
the wording is tested without running anything.
"""

from __future__ import annotations

from typing import Any

from dynamix.config import Params
from dynamix.evaluation.targets import METRIC_KEYS

LOCAL_UI = "http://127.0.0.1:5000"  # where `mlflow ui` listens by default


def _gate(params: Params, target: str) -> str:
    minimums = params.promotion.minimums(target)
    return ", ".join(f"{m} >= {v:g}" for m, v in minimums.items()) or "none"


def metrics_table(params: Params, evaluation: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per target domain: its metrics (best.pt) and the promotion minimums."""
    rows = []
    for target, values in sorted(evaluation["targets"].items()):
        row: dict[str, Any] = {"target": target}
        row.update({k: round(float(values[k]), 4) for k in METRIC_KEYS if k in values})
        if "num_valid_query" in values:
            row["num_valid_query"] = int(values["num_valid_query"])
        row["gate"] = _gate(params, target)
        rows.append(row)
    rows.append({"target": "mean", "mAP": round(float(evaluation["mean_mAP"]), 4), "gate": ""})
    return rows


def mlflow_run_link(tracking_uri: str, experiment_id: str, run_id: str) -> str:
    """A clickable URL for a tracking server; for a local store, how to open the UI."""
    fragment = f"#/experiments/{experiment_id}/runs/{run_id}"
    if tracking_uri.startswith(("http://", "https://")):
        return f"{tracking_uri.rstrip('/')}/{fragment}"
    return f"open `mlflow ui --backend-store-uri {tracking_uri}`, then {LOCAL_UI}/{fragment}"


def promotion_markdown(
    decision: dict[str, Any],
    evaluation: dict[str, Any],
    *,
    run_id: str,
    link: str,
    checkpoint: str,
) -> str:
    """The decision, why, which model version, and where to look in MLflow."""
    verdict = "ACCEPTED" if decision["promoted"] else "REJECTED"
    champion = decision.get("champion_version")
    lines = [
        f"## Promotion: {verdict}",
        "",
        f"- model: `{decision['model']}` version **{decision['version']}**"
        + (" (now the champion)" if decision["promoted"] else ""),
        f"- champion after the decision: {'v' + str(champion) if champion else 'none'}",
        f"- decision: {decision['reason']}",
    ]
    if decision.get("reasons"):
        lines += ["", "Reasons:", *(f"- {r}" for r in decision["reasons"])]
    lines += [
        "",
        f"- evaluated checkpoint: `{checkpoint}` (step {evaluation.get('step')}, "
        f"{evaluation.get('encoder')} encoder), mean target mAP "
        f"{float(evaluation['mean_mAP']):.4f}",
        f"- MLflow run: `{run_id}`; {link}",
    ]
    return "\n".join(lines)


def rejection_message(decision: dict[str, Any]) -> str:
    """The flow's failure message when ``fail_on_reject`` is set."""
    return f"model {decision['model']} v{decision['version']} not promoted: {decision['reason']}"
