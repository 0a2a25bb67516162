"""Training curves from a run's ``log.jsonl`` events: losses, lr, relabeling, evaluation.

Drawn with matplotlib's object API (``Figure`` renders through Agg without touching
pyplot's global state, so it is safe in worker threads and on machines without a display)
and written atomically. The same pictures for every run, so runs compare side by side.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from dynamix.io import atomic_path
from dynamix.train.curves import LOSS_KEYS

log = logging.getLogger(__name__)

RELABEL_COUNTS = ("images_filtered", "images_relabeled", "ids_merged", "ids_remaining")
# label quality and each action's precision (share right), both against the synthetic ground truth
RELABEL_QUALITY = ("purity", "ari", "filter_precision", "reassign_precision", "merge_precision")
# what the window judged against: the filter's own-similarity floor and the merge edge floor
RELABEL_THRESHOLDS = ("filter_threshold", "merge_threshold")
# the two of dynamix.evaluation.targets.METRIC_KEYS the evaluation picture draws
PLOTTED_METRICS = ("rank1", "mAP")


def _series(events: Sequence[dict[str, Any]], kind: str, key: str) -> tuple[list, list]:
    rows = [(e["step"], e[key]) for e in events if e["event"] == kind and e.get(key) is not None]
    return [s for s, _ in rows], [v for _, v in rows]


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return path


def loss_plot(events: Sequence[dict[str, Any]], path: Path) -> Path:
    """Total and component losses (left) and the learning rate (right) per step."""
    fig = Figure(figsize=(10, 4))
    ax, ax_lr = fig.subplots(1, 2)
    for key in LOSS_KEYS:
        steps, values = _series(events, "step", key)
        if steps:
            ax.plot(steps, values, label=key, lw=2 if key == "loss" else 1)
    ax.set(xlabel="step", ylabel="loss", title="training losses")
    ax.legend(fontsize=8)
    ax_lr.plot(*_series(events, "step", "lr"))
    ax_lr.set(xlabel="step", ylabel="lr", title="learning rate")
    return _save(fig, path)


def relabel_plot(events: Sequence[dict[str, Any]], path: Path) -> Path:
    """Per window: counts, label quality and precision (synthetic ground truth), thresholds."""
    windows = [e for e in events if e["event"] == "relabel"]
    fig = Figure(figsize=(14, 4))
    ax_n, ax_q, ax_t = fig.subplots(1, 3)
    for ax, keys, title in (
        (ax_n, RELABEL_COUNTS, "relabeling windows"),
        (ax_q, RELABEL_QUALITY, "label quality and precision vs ground truth"),
        (ax_t, RELABEL_THRESHOLDS, "thresholds applied (cosine)"),
    ):
        for key in keys:
            steps, values = _series(windows, "relabel", key)
            if steps:
                ax.plot(steps, values, marker="o", label=key)
        ax.set(xlabel="step", title=title)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    ax_n.set(ylabel="count (symlog)")  # ids remaining (thousands) beside tens of actions
    ax_n.set_yscale("symlog", linthresh=10)
    ax_q.set(ylim=(0, 1.02))
    return _save(fig, path)


def eval_plot(events: Sequence[dict[str, Any]], path: Path) -> Path:
    """Rank-1 and mAP of every target per evaluation step."""
    evals = [e for e in events if e["event"] == "eval"]
    targets = sorted({k.split("/")[0] for e in evals for k in e if "/" in k})
    fig = Figure(figsize=(10, 4))
    for ax, metric in zip(fig.subplots(1, 2), PLOTTED_METRICS, strict=True):
        for target in targets:
            ax.plot(*_series(evals, "eval", f"{target}/{metric}"), marker="o", label=target)
        ax.set(xlabel="step", ylabel=metric, title=f"target {metric}")
        if targets:
            ax.legend(fontsize=8)
    return _save(fig, path)


def write_training_plots(events: Sequence[dict[str, Any]], out_dir: str | os.PathLike[str]) -> list[Path]:
    """``loss.png``, ``eval.png`` and (when a round ran) ``relabel.png`` in ``out_dir``."""
    out = Path(out_dir)
    paths = [loss_plot(events, out / "loss.png"), eval_plot(events, out / "eval.png")]
    if any(e["event"] == "relabel" for e in events):
        paths.append(relabel_plot(events, out / "relabel.png"))
    log.info("wrote %d training plots to %s", len(paths), out)
    return paths
