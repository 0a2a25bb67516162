"""One torchrun rank of the pipeline's ``train`` task: ``python -m flows.train_worker``.

The task starts ``torchrun --nproc_per_node=N -m flows.train_worker ...`` when
``train.nproc_per_node`` > 1 (:func:`flows.pipeline.train_task`). Every rank builds the
same :class:`~dynamix.train.trainer.Trainer`; rank 0 also streams its metrics live into the
flow's MLflow run and writes the final metrics to ``--metrics-out`` for the task to
return. A :class:`DynamixError` (bad data or params: retrying cannot fix it) is written to
``--error-file`` by rank 0, so the task fails with that one line and does not retry.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from dynamix.config import Params, load_params
from dynamix.errors import DynamixError
from dynamix.io import write_json_atomic
from dynamix.train.callbacks import Callback

if TYPE_CHECKING:
    from dynamix.train.trainer import Trainer


def tracked_trainer(
    params: Params, resume: bool, run_id: str, rounds_done: int, callbacks: Sequence[Callback]
) -> Trainer:
    """The trainer of the pipeline's ``train`` task (in its process or on a torchrun rank):
    ``callbacks`` plus, on rank 0, live metrics into the MLflow run ``run_id``."""
    from dynamix.train.trainer import Trainer
    from flows.tracking import MlflowCallback

    trainer = Trainer(params, resume=resume, callbacks=list(callbacks))
    if trainer.is_main:
        trainer.callbacks.append(MlflowCallback(run_id, params.tracking.log_every, rounds_done=rounds_done))
    return trainer


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m flows.train_worker")
    p.add_argument("--params", required=True)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--run-id", required=True, help="the flow's MLflow run")
    p.add_argument("--rounds-done", type=int, default=0, help="relabel rounds already logged")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--metrics-out", required=True)
    p.add_argument("--error-file", required=True)
    return p.parse_args(argv)


def main(argv: list[str] | None = None, callbacks: Sequence[Callback] = ()) -> int:
    """One rank; ``callbacks`` (rank 0 only, like every trainer callback) are for wrappers."""
    args = parse_args(argv)
    rank = os.environ.get("RANK", "0")
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s [rank {rank}] %(levelname)s %(name)s: %(message)s")
    from dynamix.train import distributed
    from flows.tracking import configure

    try:  # a bad params file or an unreadable last.pt: one line in --error-file, no retry
        params = load_params(args.params, args.set)
        configure(params)  # the flow's tracking store, for rank 0's live metrics
        trainer = tracked_trainer(params, args.resume, args.run_id, args.rounds_done, callbacks)
        metrics = trainer.fit()
    except DynamixError as exc:
        print(f"train worker: error: {exc}", file=sys.stderr)
        if rank == "0":
            write_json_atomic(args.error_file, {"error": str(exc)})
        return 2
    finally:
        distributed.cleanup()
    if trainer.is_main:
        write_json_atomic(args.metrics_out, metrics)
    return 0


if __name__ == "__main__":
    sys.exit(main())
