"""Serve the pipeline as the deployment ``dynamix-pipeline/local`` on this machine.

``python -m flows.serve`` registers the deployment with the Prefect API in
``PREFECT_API_URL`` and then polls it, starting each triggered run in a subprocess (in
this working directory, so ``params.yaml`` and its relative paths resolve as for the CLI).
Trigger runs with

    prefect deployment run 'dynamix-pipeline/local' -p overrides='["train.iters=20"]' --watch

``flow.serve`` is the one-process setup for a single machine. ``--pool NAME`` instead
registers the deployment on a work pool and exits: a ``prefect worker start --pool NAME``
on the machine with the GPU (and this checkout at the same path) then runs the flows.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from flows.pipeline import pipeline_flow

DEPLOYMENT_NAME = "local"
DESCRIPTION = "DynaMix: data (DVC) -> GX gate -> train -> evaluate -> MLflow -> promote"


def _parameters(params_path: str, overrides: list[str] | None, fail_on_reject: bool) -> dict[str, Any]:
    return {
        "params_path": params_path,
        "overrides": list(overrides or []),
        "fail_on_reject": fail_on_reject,
    }


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
        parameters=_parameters(params_path, overrides, fail_on_reject),
        description=DESCRIPTION,
        tags=["dynamix"],
    )


def deploy_to_pool(
    pool: str,
    name: str,
    params_path: str = "params.yaml",
    overrides: list[str] | None = None,
    fail_on_reject: bool = False,
) -> Any:
    """Register the deployment on work pool ``pool`` (code from this checkout); its id.

    The flow's code is read from this directory when a worker starts a run, so the
    worker's machine needs the checkout at the same path (or use a git URL as source).
    """
    source = str(Path(__file__).resolve().parents[1])
    remote = pipeline_flow.from_source(source=source, entrypoint="flows/pipeline.py:pipeline_flow")
    return remote.deploy(
        name=name,
        work_pool_name=pool,
        parameters=_parameters(params_path, overrides, fail_on_reject),
        description=DESCRIPTION,
        tags=["dynamix"],
        build=False,
        push=False,
        print_next_steps=False,
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m flows.serve", description=__doc__.split("\n")[0])
    p.add_argument("--name", default=DEPLOYMENT_NAME, help="deployment name (default: local)")
    p.add_argument("--params", default="params.yaml", help="default params_path of the runs")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="default override for every run, e.g. train.device=cuda",
    )
    p.add_argument(
        "--fail-on-reject", action="store_true", help="runs end Failed when the promotion gate rejects the model"
    )
    p.add_argument("--limit", type=int, default=1, help="runs at the same time (default 1: one training per machine)")
    p.add_argument(
        "--pool", default=None, metavar="WORK_POOL", help="register the deployment on this work pool and exit"
    )
    args = p.parse_args(argv)
    if args.pool:
        deploy_to_pool(args.pool, args.name, args.params, args.set, args.fail_on_reject)
        print(
            f"deployment dynamix-pipeline/{args.name} on work pool {args.pool}; start a worker "
            f"with: prefect worker start --pool {args.pool}"
        )
        return
    # the runs' subprocesses inherit this: dynamix and flows logs reach the Prefect UI
    os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "dynamix,flows")
    from prefect import serve

    deployment = build_deployment(args.name, args.params, args.set, args.fail_on_reject)
    serve(deployment, limit=args.limit)


if __name__ == "__main__":
    main()
