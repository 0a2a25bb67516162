"""Metrics of a saved checkpoint on the target domains, exactly as the trainer computes them.

The trainer evaluates inside its loop (:meth:`dynamix.train.trainer.Trainer.evaluate`);
this is the same computation for a checkpoint on disk, for a release gate, a comparison of
runs, or a target added after training. Same encoder (momentum by default), same eval
transform and feature pass (:func:`dynamix.train.features.extract_features`), same
``evaluation`` settings and metric keys, so for the weights of a checkpoint it reproduces
the checkpoint's own ``last_eval`` numbers.

The architecture comes from the checkpoint; data, evaluation settings, batch size and
device from the ``params`` passed in (the targets to score may differ from the run's).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from dynamix.config import Params
from dynamix.errors import DynamixError

log = logging.getLogger(__name__)

PLOT_QUERIES = 8  # rows of a ranked-list picture


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
    ranked-list PNG per target (``ranks_<target>.png``: the first queries and their top 10).

    ``reuse_recorded``: when the checkpoint's own evaluation was computed with this encoder
    and these settings on these very query/gallery rows
    (:func:`~dynamix.train.eval_record.reusable_targets`), return its numbers without a
    feature pass (``source: recorded``); otherwise, and always with ``plots_dir``,
    extract (``source: extracted``).
    """
    from dynamix.evaluation import evaluate_features
    from dynamix.infer.checkpoint import build_encoder, read_checkpoint
    from dynamix.train.data import target_splits
    from dynamix.train.features import extract_features
    from dynamix.train.trainer import EVAL_KEYS, resolve_device

    cfg, ev = params.train, params.evaluation
    device = resolve_device(cfg.device)
    amp = cfg.amp and device.type == "cuda"  # the trainer's rule: bf16 autocast on CUDA only
    state = read_checkpoint(checkpoint_path)
    splits = _select(target_splits(params), targets)
    if reuse_recorded and plots_dir is None:
        recorded = _recorded(state, params, splits, encoder, checkpoint_path)
        if recorded is not None:
            return recorded
    model, info = build_encoder(state, checkpoint_path, encoder, device)
    del state  # optimizer, bank and the other encoder are not needed any more
    kw = dict(img_size=info.img_size, batch_size=cfg.eval_batch_size,
              num_workers=cfg.num_workers, device=device, amp=amp)  # fmt: skip
    results: dict[str, Any] = {}
    for name, (query, gallery) in splits.items():
        feats = [extract_features(model, r["path"].astype(str).tolist(), **kw)
                 for r in (query, gallery)]  # [(Q, D), (G, D)]  # fmt: skip
        ids = [query["pid"].to_numpy(), gallery["pid"].to_numpy(),
               query["camid"].to_numpy(), gallery["camid"].to_numpy()]  # fmt: skip
        result = evaluate_features(
            *feats, *ids, max_rank=ev.max_rank, metric=ev.metric, block_size=ev.block_size
        ).as_dict()
        results[name] = {k: result[k] for k in (*EVAL_KEYS, "num_valid_query") if k in result}
        log.info("%s: rank1 %.4f mAP %.4f (%d valid queries)", name, results[name]["rank1"],
                 results[name]["mAP"], results[name]["num_valid_query"])  # fmt: skip
        if plots_dir is not None:
            _plot(name, query, gallery, *feats, ids, ev.metric, Path(plots_dir))
    return {
        "checkpoint": str(checkpoint_path),
        "step": info.step,
        "encoder": encoder,
        "targets": results,
        "mean_mAP": float(np.mean([r["mAP"] for r in results.values()])),
        "source": "extracted",
    }


def _recorded(
    state: dict[str, Any], params: Params, splits: dict[str, Any], encoder: str,
    checkpoint_path: str | os.PathLike[str],
) -> dict[str, Any] | None:  # fmt: skip
    """The checkpoint's own numbers for ``splits``, or None when any of them is stale."""
    from dynamix.train.eval_record import reusable_targets

    last = state.get("last_eval") or {}
    if int(last.get("step", -1)) != int(state.get("step", -2)):
        return None  # last.pt after further steps: its record is of an older model
    usable = reusable_targets(last, params, splits, encoder)
    if set(usable) != set(splits):
        log.info("%s: recorded evaluation does not cover %s; extracting features",
                 checkpoint_path, ", ".join(sorted(set(splits) - set(usable))))  # fmt: skip
        return None
    results = {name: dict(last["targets"][name]) for name in splits}
    for name, r in results.items():
        log.info("%s: rank1 %.4f mAP %.4f (recorded at step %d)", name, r["rank1"], r["mAP"],
                 int(last["step"]))  # fmt: skip
    return {
        "checkpoint": str(checkpoint_path),
        "step": int(last["step"]),
        "encoder": encoder,
        "targets": results,
        "mean_mAP": float(np.mean([r["mAP"] for r in results.values()])),
        "source": "recorded",
    }


def _select(splits: dict[str, Any], names: list[str] | None) -> dict[str, Any]:
    if not names:
        return splits
    unknown = [n for n in names if n not in splits]
    if unknown:
        raise DynamixError(
            f"unknown target(s) {', '.join(unknown)}; params.yaml data.targets has "
            f"{', '.join(splits) or 'none'}"
        )
    return {n: splits[n] for n in names}


def _plot(
    name: str, query: Any, gallery: Any, qf: Any, gf: Any, ids: list, metric: str, out: Path
) -> Path:
    """Ranked lists of the first queries, ranked by the evaluation's distance."""
    from dynamix.evaluation import pairwise_distance, plot_ranked_list

    n = min(PLOT_QUERIES, len(query))
    dist = pairwise_distance(qf[:n], gf, metric).numpy()  # (n, G); features are unit-norm
    q_pids, g_pids, q_camids, g_camids = ids
    return plot_ranked_list(
        query["path"].astype(str).tolist()[:n], gallery["path"].astype(str).tolist(), dist,
        q_pids[:n], g_pids, q_camids[:n], g_camids, out / f"ranks_{name}.png",
        topk=min(10, len(gallery)),
    )  # fmt: skip
