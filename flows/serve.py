"""Serve the pipeline as the deployment ``dynamix-pipeline/local`` on this machine.

``python -m flows.serve`` registers the deployment with the Prefect API in
``PREFECT_API_URL`` and then polls it, starting each triggered run in a subprocess (in
this working directory, so ``params.yaml`` and its relative paths resolve as for the CLI).
Trigger runs with

    prefect deployment run 'dynamix-pipeline/local' -p overrides='["train.iters=20"]' --watch

``flow.serve`` is the one-process setup for a single machine; for a GPU box the same
flow deploys to a work pool instead (see the README).
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from flows.pipeline import pipeline_flow

DEPLOYMENT_NAME = "local"


def build_deployment(
    name: str = DEPLOYMENT_NAME,
    params_path: str = "params.yaml",
    overrides: list[str] | None = None,
    fail_on_reject: bool = False,
) -> Any:
    """The ``RunnerDeployment`` of ``dynamix-pipeline`` with these default parameters.

    Every parameter can be overridden per run (``-p key=json`` on the CLI).
    """
    return pipeline_flow.to_deployment(
        name=name,
        parameters={
            "params_path": params_path,
            "overrides": list(overrides or []),
            "fail_on_reject": fail_on_reject,
        },
        description="DynaMix: data (DVC) -> GX gate -> train -> evaluate -> MLflow -> promote",
        tags=["dynamix"],
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m flows.serve", description=__doc__.split("\n")[0])
    p.add_argument("--name", default=DEPLOYMENT_NAME, help="deployment name (default: local)")
    p.add_argument("--params", default="params.yaml", help="default params_path of the runs")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="default override for every run, e.g. train.device=cuda")  # fmt: skip
    p.add_argument("--fail-on-reject", action="store_true",
                   help="runs end Failed when the promotion gate rejects the model")  # fmt: skip
    p.add_argument("--limit", type=int, default=1,
                   help="runs at the same time (default 1: one training per machine)")  # fmt: skip
    args = p.parse_args(argv)
    # the runs' subprocesses inherit this: dynamix and flows logs reach the Prefect UI
    os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "dynamix,flows")
    from prefect import serve

    deployment = build_deployment(args.name, args.params, args.set, args.fail_on_reject)
    serve(deployment, limit=args.limit)


if __name__ == "__main__":
    main()
