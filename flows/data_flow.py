"""A thin Prefect flow over the data stages: manifests, validation, then the baseline.

The flow only orchestrates; every step is a plain ``dynamix`` function that the DVC stages
and the CLI call too. The full training pipeline flow grows from this one.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from dynamix.baseline import DATA_VERSION_KEY, baseline_report
from dynamix.config import load_params
from dynamix.errors import DynamixError
from dynamix.io import write_json_atomic
from dynamix.prepare import prepare_manifests


@task(name="prepare-manifests")
def prepare_task(params_path: str, overrides: list[str]) -> dict[str, Any]:
    return prepare_manifests(load_params(params_path, overrides))


@task(name="validate-manifests")
def validate_task(params_path: str, overrides: list[str]) -> dict[str, Any]:
    """The data gate: attach the summary as an artifact, raise (fail the flow) on bad data."""
    from flows.validation import failure_line, format_markdown, validate_data

    summary = validate_data(load_params(params_path, overrides))
    create_markdown_artifact(
        key="data-validation",
        markdown=format_markdown(summary),
        description="Great Expectations suites over the manifests",
    )
    if not summary["success"]:
        lines = "\n".join(failure_line(f) for f in summary["failures"])
        raise DynamixError(f"data validation failed, baseline not run:\n{lines}")
    return summary


@task(name="baseline-evaluation")
def baseline_task(params_path: str, overrides: list[str], metrics_out: str) -> dict[str, Any]:
    report = baseline_report(load_params(params_path, overrides))  # with its data version, for the gate
    write_json_atomic(metrics_out, report)
    return {name: values for name, values in report.items() if name != DATA_VERSION_KEY}


@flow(name="dynamix-data")
def data_flow(
    params_path: str = "params.yaml",
    overrides: list[str] | None = None,
    metrics_out: str = "metrics/baseline.json",
) -> dict[str, Any]:
    """Build every manifest and evaluate the hand-crafted baseline on the target domains."""
    overrides = list(overrides or [])
    logger = get_run_logger()
    summary = prepare_task(params_path, overrides)
    logger.info("manifests: %s", ", ".join(sorted(summary)))
    validate_task(params_path, overrides)  # raises on bad data: nothing downstream runs
    metrics = baseline_task(params_path, overrides, metrics_out)
    create_table_artifact(
        key="baseline-metrics",
        table=[{"target": name, **values} for name, values in sorted(metrics.items())],
        description="Hand-crafted colour descriptor on the unseen target domains",
    )
    return metrics


if __name__ == "__main__":
    data_flow()
