"""What a checkpoint records about its own evaluation, so later steps need no feature pass.

The trainer evaluates every target at ``eval_every`` and saves ``best.pt`` right after;
the pipeline then needs the same numbers again (the promotion gate) and a ranked-list
picture per target. Extracting every query and gallery feature a second (and third) time
from ``best.pt`` only reproduces what the trainer computed. So each evaluation records:

- ``evaluated_on``: the encoder, the metric, ``max_rank`` and a fingerprint of every
  target's query and gallery rows (:func:`~dynamix.train.data.split_fingerprint`);
- ``ranked``: the top-k gallery rows of a few evenly spread queries per target.

A reader reuses a target's numbers only while all of these match the current params and
manifests (:func:`reusable_targets`); otherwise it extracts features as before.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from dynamix.config import Params
from dynamix.train.data import split_fingerprint

RANKED_TOPK = 10  # gallery matches per query in a ranked-list picture


def ranked_rows(num_query: int, num_rows: int) -> list[int]:
    """``num_rows`` query rows spread evenly over ``num_query`` (fewer when it is small)."""
    if num_rows <= 0 or num_query <= 0:
        return []
    return np.unique(np.linspace(0, num_query - 1, num_rows).astype(int)).tolist()


def rank_queries(
    q_feats: torch.Tensor,
    g_feats: torch.Tensor,
    query: pd.DataFrame,
    gallery: pd.DataFrame,
    rows: list[int],
    metric: str,
) -> dict[str, Any]:
    """``{"rows", "indices", "distances"}``: top-k gallery rows of the query ``rows``,
    ranked and filtered exactly as the metrics rank them."""
    from dynamix.evaluation.topk import topk_gallery

    if not rows:
        return {"rows": [], "indices": [], "distances": []}
    sel = np.asarray(rows)
    top = topk_gallery(
        q_feats[sel], g_feats, min(RANKED_TOPK, len(gallery)),
        q_pids=query["pid"].to_numpy()[sel], g_pids=gallery["pid"].to_numpy(),
        q_camids=query["camid"].to_numpy()[sel], g_camids=gallery["camid"].to_numpy(),
        metric=metric,
    )  # fmt: skip
    return {"rows": rows, "indices": top.indices.tolist(), "distances": top.distances.tolist()}


def evaluated_on(
    params: Params, splits: dict[str, tuple[pd.DataFrame, pd.DataFrame]], encoder: str
) -> dict[str, Any]:
    """The settings and data an evaluation's numbers belong to."""
    ev = params.evaluation
    return {
        "encoder": encoder,
        "metric": ev.metric,
        "max_rank": ev.max_rank,
        "targets": {name: split_fingerprint(q, g) for name, (q, g) in splits.items()},
    }


def reusable_targets(
    last_eval: dict[str, Any] | None,
    params: Params,
    splits: dict[str, tuple[pd.DataFrame, pd.DataFrame]],
    encoder: str,
) -> list[str]:
    """Targets of ``splits`` whose recorded numbers in ``last_eval`` still hold.

    Empty for a checkpoint without a record (written before records existed) or one
    evaluated with another encoder, metric or ``max_rank``; a target is left out when its
    query/gallery rows changed since (a rebuilt manifest).
    """
    record = (last_eval or {}).get("evaluated_on")
    if not record:
        return []
    current = evaluated_on(params, splits, encoder)
    if any(record.get(k) != current[k] for k in ("encoder", "metric", "max_rank")):
        return []
    done, prints = last_eval.get("targets") or {}, record.get("targets") or {}
    return [
        name for name, fingerprint in current["targets"].items()
        if name in done and prints.get(name) == fingerprint
    ]  # fmt: skip
