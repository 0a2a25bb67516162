"""``dynamix train``: train (or resume) DynaMix with the settings in params.yaml.

The CLI owns the progress bar (a :class:`~dynamix.train.callbacks.Callback` around tqdm);
the trainer itself only logs. Multi-process: ``train.nproc_per_node=N`` makes the command
start itself under torchrun with N processes (:mod:`dynamix.train.launch`); running
``torchrun --nproc_per_node=N -m dynamix.cli train ...`` by hand does the same. One process
per GPU; the bar and the files come from rank 0.

Before it starts, the command checks what it trains on and where it writes
(:mod:`dynamix.train.preflight`): the manifests must be current and passed by the data gate
(``--skip-validation`` trains anyway, with a warning), and a ``train.out_dir`` holding a
previous run needs ``--resume`` (continue it) or ``--overwrite`` (replace it).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from dynamix.config import load_params
from dynamix.errors import DynamixError
from dynamix.io import clean_temp_files
from dynamix.train.preflight import RUN_FILES

log = logging.getLogger(__name__)


def progress_callback(total: int, initial: int):
    """A tqdm bar showing live loss and img/s; imported only when the CLI runs."""
    from tqdm import tqdm

    from dynamix.train.callbacks import Callback

    class Progress(Callback):
        def __init__(self) -> None:
            self.bar = tqdm(total=total, initial=initial, desc="train", unit="it")

        def on_step(self, step: int, metrics: dict[str, Any]) -> None:
            self.bar.set_postfix(loss=f"{metrics['loss']:.3f}", img_s=f"{metrics['img_s']:.0f}")
            self.bar.update(step - self.bar.n)

        def on_eval(self, step: int, metrics: dict[str, Any]) -> None:
            self.bar.write(f"step {step}: mean target mAP {metrics['mean_mAP']:.4f}")

        def on_relabel(self, step: int, stats: dict[str, Any]) -> None:
            self.bar.write(
                f"step {step}: relabel filtered {stats['images_filtered']}, relabeled "
                f"{stats['images_relabeled']}, merged {stats['ids_merged']} ids"
            )

    return Progress()


def relaunch_args(args: argparse.Namespace) -> list[str]:
    """The ``dynamix train`` arguments of ``args`` again, for every torchrun rank."""
    out = ["--log-level", args.log_level, "train", "--params", args.params]
    for item in args.set:
        out += ["--set", item]
    out += ["--resume"] if args.resume else []
    out += ["--overwrite"] if args.overwrite else []
    out += ["--skip-validation"] if args.skip_validation else []
    out += ["--metrics-out", args.metrics_out] if args.metrics_out else []
    out += ["--curves-dir", args.curves_dir] if args.curves_dir else []
    return out + ([] if args.progress else ["--no-progress"])


def _handler(args: argparse.Namespace) -> int:
    from dynamix.train import distributed, launch, preflight
    from dynamix.train.trainer import Trainer

    params = load_params(args.params, args.set)
    nproc = params.train.nproc_per_node
    if args.skip_validation:
        log.warning("--skip-validation: training without checking the manifests and the data gate")
    else:
        preflight.check_data(params)  # on every rank too: read-only, they all agree
    if args.metrics_out:  # what a killed earlier write of it left
        clean_temp_files(Path(args.metrics_out).parent, [Path(args.metrics_out).name])
    if launch.wants_launch(nproc):
        # refuse a used out_dir before starting N processes (rank 0 clears it with --overwrite)
        preflight.check_out_dir(params.train.out_dir, resume=args.resume, overwrite=args.overwrite)
        log.info("starting torchrun with %d processes", nproc)
        command = launch.torchrun_command(nproc, "dynamix.cli", relaunch_args(args))
        code, _ = launch.run_torchrun(command)
        if code != 0:
            raise DynamixError(f"torchrun with {nproc} processes exited with {code}; the failing rank's error is above")
        return 0
    try:  # under torchrun the Trainer joins the process group; leave it on every exit
        trainer = Trainer(params, resume=args.resume, overwrite=args.overwrite)
        if args.progress and trainer.is_main:
            trainer.callbacks.append(progress_callback(params.train.iters, trainer.step))
        metrics = trainer.fit()
    finally:
        distributed.cleanup()
    if not trainer.is_main:
        return 0
    if args.metrics_out:
        from dynamix.io import write_json_atomic

        write_json_atomic(args.metrics_out, metrics)
    if args.curves_dir:
        from dynamix.train.curves import write_curves

        write_curves(trainer.out_dir, args.curves_dir)
    log.info(
        "done: mean target mAP %.4f; best.pt = step %d (by %s); outputs in %s",
        metrics["mean_mAP"],
        metrics["best_step"],
        metrics["selected_by"],
        trainer.out_dir,
    )
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("train", help="train the DynaMix model (params.yaml: model, train)")
    p.add_argument("--params", default="params.yaml")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a params.yaml key, e.g. train.iters=50",
    )
    used = p.add_mutually_exclusive_group()
    used.add_argument("--resume", action="store_true", help="continue from <train.out_dir>/last.pt (full state)")
    used.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a previous run in train.out_dir (its " + ", ".join(RUN_FILES) + ")",
    )
    p.add_argument(
        "--skip-validation",
        action="store_true",
        help="train even when the manifests are stale or the data gate (`dynamix validate`) did not pass on them",
    )
    p.add_argument("--metrics-out", metavar="PATH", help="also write the final metrics here (DVC: metrics/train.json)")
    p.add_argument("--curves-dir", metavar="DIR", help="write steps.csv, eval.csv, relabel.csv (dvc plots) into DIR")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar (logs only)")
    p.set_defaults(func=_handler)
