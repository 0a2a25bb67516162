"""Metrics of a saved checkpoint on the target domains, exactly as the trainer computes them.

The trainer evaluates inside its loop (:meth:`dynamix.train.trainer.Trainer.evaluate`);
this is the same computation for a checkpoint on disk, for a release gate, a comparison of
runs, or a target added after training. Same encoder (momentum by default), same feature
pass (:func:`dynamix.train.features.extract_features`) and the same per-target loop
(:func:`dynamix.evaluation.targets.evaluate_encoder`), so for the weights of a checkpoint
it reproduces the checkpoint's own ``last_eval`` numbers.

The architecture comes from the checkpoint; data, evaluation settings, batch size and
device from the ``params`` passed in (the targets to score may differ from the run's).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from dynamix.config import Params
from dynamix.evaluation.targets import (
    PLOT_QUERIES,
    Splits,
    evaluate_encoder,
    mean_map,
    plot_ranked,
    select_targets,
    target_splits,
)

log = logging.getLogger(__name__)


def evaluate_checkpoint(
    params: Params,
    checkpoint_path: str | os.PathLike[str],
    encoder: str = "momentum",
    targets: list[str] | None = None,
    plots_dir: str | os.PathLike[str] | None = None,
    reuse_recorded: bool = False,
) -> dict[str, Any]:
    """Market-1501 metrics of ``checkpoint_path`` on ``targets`` (default: every target).

    Returns ``{"checkpoint", "step", "encoder", "targets": {name: {rank1, rank5, rank10,
    mAP, mINP, num_valid_query}}, "mean_mAP", "source"}``. With ``plots_dir``, also writes a
    ranked-list PNG per target (``ranks_<target>.png``: :data:`PLOT_QUERIES` queries spread
    over the target and their top 10).

    ``reuse_recorded``: when the checkpoint's own evaluation was computed with this encoder
    and these settings on these very query/gallery rows
    (:func:`~dynamix.train.eval_record.reusable_targets`), return its numbers without a
    feature pass (``source: recorded``); otherwise, and always with ``plots_dir``,
    extract (``source: extracted``).
    """
    from dynamix.infer.checkpoint import build_encoder, read_checkpoint
    from dynamix.train.features import extract_features
    from dynamix.train.trainer import resolve_device

    cfg = params.train
    device = resolve_device(cfg.device)
    amp = cfg.amp and device.type == "cuda"  # the trainer's rule: bf16 autocast on CUDA only
    state = read_checkpoint(checkpoint_path)
    splits = select_targets(target_splits(params), targets)
    if reuse_recorded and plots_dir is None:
        recorded = _recorded(state, params, splits, encoder, checkpoint_path)
        if recorded is not None:
            return recorded
    model, info = build_encoder(state, checkpoint_path, encoder, device)
    del state  # optimizer, bank and the other encoder are not needed any more

    def embed(paths: list[str]) -> Any:
        return extract_features(
            model,
            paths,
            img_size=info.img_size,
            batch_size=cfg.eval_batch_size,
            num_workers=cfg.num_workers,
            device=device,
            amp=amp,
        )

    queries = PLOT_QUERIES if plots_dir is not None else 0
    report = evaluate_encoder(embed, splits, params.evaluation, ranked_queries=queries)
    for name, r in report["targets"].items():
        log.info(
            "%s: rank1 %.4f mAP %.4f (%d valid queries)",
            name,
            r["rank1"],
            r["mAP"],
            r["num_valid_query"],
        )
        if plots_dir is not None:
            query, gallery = splits[name]
            plot_ranked(query, gallery, report["ranked"][name], Path(plots_dir) / f"ranks_{name}.png")
    return {
        "checkpoint": str(checkpoint_path),
        "step": info.step,
        "encoder": encoder,
        "targets": report["targets"],
        "mean_mAP": report["mean_mAP"],
        "source": "extracted",
    }


def _recorded(
    state: dict[str, Any],
    params: Params,
    splits: Splits,
    encoder: str,
    checkpoint_path: str | os.PathLike[str],
) -> dict[str, Any] | None:
    """The checkpoint's own numbers for ``splits``, or None when any of them is stale."""
    from dynamix.train.eval_record import reusable_targets

    last = state.get("last_eval") or {}
    if int(last.get("step", -1)) != int(state.get("step", -2)):
        return None  # last.pt after further steps: its record is of an older model
    usable = reusable_targets(last, params, splits, encoder)
    if set(usable) != set(splits):
        missing = ", ".join(sorted(set(splits) - set(usable)))
        log.info("%s: recorded evaluation does not cover %s; extracting", checkpoint_path, missing)
        return None
    results = {name: dict(last["targets"][name]) for name in splits}
    step = int(last["step"])
    for name, r in results.items():
        log.info("%s: rank1 %.4f mAP %.4f (recorded at step %d)", name, r["rank1"], r["mAP"], step)
    return {
        "checkpoint": str(checkpoint_path),
        "step": step,
        "encoder": encoder,
        "targets": results,
        "mean_mAP": mean_map(results),
        "source": "recorded",
    }
