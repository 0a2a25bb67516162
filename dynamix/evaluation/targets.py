"""Scoring an encoder on the unseen target domains: the one home of the per-target loop.

The trainer (at every ``eval_every``), ``dynamix evaluate`` (a checkpoint on disk), the
colour-descriptor baseline (no network at all) and the promotion gate all score the same
way: every target's query and gallery rows, embedded by *some* function, ranked with the
``evaluation`` settings, reported under the same metric keys. Only the embedding differs,
so it is the one argument that varies (:func:`evaluate_encoder`'s ``embed_fn``); a second
copy of the loop could drift (a metric hard-coded, a key renamed) without a test noticing.

Module-level imports stay light (``dynamix.config`` takes :data:`METRIC_KEYS` from here);
pandas, torch and the ranking code load on first use.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from dynamix.config import EvaluationConfig, Params

log = logging.getLogger(__name__)

#: The metrics every report, table, curve and gate uses, in display order.
METRIC_KEYS = ("rank1", "rank5", "rank10", "mAP", "mINP")
#: What a per-target report holds: the metrics and how many queries they average over.
REPORT_KEYS = (*METRIC_KEYS, "num_valid_query")
RANKED_TOPK = 10  # gallery matches per query in a ranked list
PLOT_QUERIES = 8  # queries in the ranked-list PNG of `dynamix evaluate` and `baseline`

#: ``{target name: (query rows, gallery rows)}`` of the target manifests.
Splits = dict[str, tuple["pd.DataFrame", "pd.DataFrame"]]
#: Image paths → (N, D) features (numpy or torch), row i for ``paths[i]``.
EmbedFn = Callable[[list[str]], Any]


def target_splits(params: Params) -> Splits:
    """``{target name: (query rows, gallery rows)}`` of every ``data.targets`` manifest."""
    from dynamix.data.manifest import manifest_path, read_manifest
    from dynamix.errors import DynamixError

    out: Splits = {}
    for spec in params.data.targets:
        path = manifest_path(params, spec.name)
        if not path.is_file():
            raise DynamixError(f"{path}: manifest not found; run `dynamix prepare` first")
        df = read_manifest(path)
        query = df[df["split"] == "query"].reset_index(drop=True)
        gallery = df[df["split"] == "gallery"].reset_index(drop=True)
        if query.empty or gallery.empty:
            raise DynamixError(f"{path}: target has no query or gallery")
        out[spec.name] = (query, gallery)
    return out


def select_targets(splits: Splits, names: Sequence[str] | None) -> Splits:
    """Only the targets ``names`` (all when empty); an unknown name is a one-line error."""
    from dynamix.errors import DynamixError

    if not names:
        return splits
    unknown = [n for n in names if n not in splits]
    if unknown:
        raise DynamixError(
            f"unknown target(s) {', '.join(unknown)}; params.yaml data.targets has {', '.join(splits) or 'none'}"
        )
    return {n: splits[n] for n in names}


def split_fingerprint(query: pd.DataFrame, gallery: pd.DataFrame) -> str:
    """SHA-256 of what an evaluation of a target depends on: its query and gallery rows
    (path, pid, camid, in order). A recorded evaluation is reused only while this matches.
    """
    import hashlib

    import pandas as pd

    digest = hashlib.sha256()
    for part in (query, gallery):
        rows = part[["path", "pid", "camid"]].astype({"path": str})
        digest.update(len(rows).to_bytes(8, "little"))
        digest.update(pd.util.hash_pandas_object(rows, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def ranked_rows(num_query: int, num_rows: int) -> list[int]:
    """``num_rows`` query rows spread evenly over ``num_query`` (fewer when it is small)."""
    import numpy as np

    if num_rows <= 0 or num_query <= 0:
        return []
    return np.unique(np.linspace(0, num_query - 1, num_rows).astype(int)).tolist()


def rank_queries(
    q_feats: Any,
    g_feats: Any,
    query: pd.DataFrame,
    gallery: pd.DataFrame,
    rows: list[int],
    metric: str,
) -> dict[str, Any]:
    """``{"rows", "indices", "distances"}``: top-k gallery rows of the query ``rows``,
    ranked and filtered exactly as the metrics rank them. q_feats (Q, D), g_feats (G, D)."""
    import numpy as np

    from dynamix.evaluation.topk import topk_gallery

    if not rows:
        return {"rows": [], "indices": [], "distances": []}
    sel = np.asarray(rows)
    top = topk_gallery(
        q_feats[sel],
        g_feats,
        min(RANKED_TOPK, len(gallery)),
        q_pids=query["pid"].to_numpy()[sel],
        g_pids=gallery["pid"].to_numpy(),
        q_camids=query["camid"].to_numpy()[sel],
        g_camids=gallery["camid"].to_numpy(),
        metric=metric,
    )
    return {"rows": rows, "indices": top.indices.tolist(), "distances": top.distances.tolist()}


def mean_map(targets: dict[str, dict[str, Any]]) -> float:
    """Mean mAP over the targets: the one number ``best.pt`` is chosen by."""
    import numpy as np

    return float(np.mean([r["mAP"] for r in targets.values()]))


def evaluate_encoder(
    embed_fn: EmbedFn,
    splits: Splits,
    cfg: EvaluationConfig,
    *,
    ranked_queries: int = 0,
    keys: Sequence[str] = REPORT_KEYS,
) -> dict[str, Any]:
    """Market-1501 metrics of ``embed_fn`` on every target of ``splits``.

    Each target's query paths, then its gallery paths, go through ``embed_fn`` once; the
    features are ranked with ``cfg`` (metric, max_rank, block_size) by
    :func:`~dynamix.evaluation.features.evaluate_features`. Returns::

        {"targets": {name: {k: value for k in keys}},   # rank10 absent if max_rank < 10
         "mean_mAP": float,
         "ranked": {name: {"rows", "indices", "distances"}}}

    ``ranked``: the top :data:`RANKED_TOPK` matches of ``ranked_queries`` query rows spread
    evenly over each target (:func:`rank_queries`; empty lists for 0), so a ranked-list
    picture needs no second feature pass (:func:`plot_ranked`).
    """
    from dynamix.evaluation.features import evaluate_features

    results: dict[str, Any] = {}
    ranked: dict[str, Any] = {}
    for name, (query, gallery) in splits.items():
        qf = embed_fn(query["path"].astype(str).tolist())  # (Q, D)
        gf = embed_fn(gallery["path"].astype(str).tolist())  # (G, D)
        result = evaluate_features(
            qf,
            gf,
            query["pid"].to_numpy(),
            gallery["pid"].to_numpy(),
            query["camid"].to_numpy(),
            gallery["camid"].to_numpy(),
            max_rank=cfg.max_rank,
            metric=cfg.metric,
            block_size=cfg.block_size,
        ).as_dict()
        results[name] = {k: result[k] for k in keys if k in result}
        rows = ranked_rows(len(query), ranked_queries)
        ranked[name] = rank_queries(qf, gf, query, gallery, rows, cfg.metric)
        log.debug("%s: %s", name, results[name])
    return {"targets": results, "mean_mAP": mean_map(results), "ranked": ranked}


def plot_ranked(
    query: pd.DataFrame,
    gallery: pd.DataFrame,
    ranked: dict[str, Any],
    out_path: str | os.PathLike[str],
) -> Path:
    """The ranked-list PNG of one target from its ``ranked`` record (:func:`rank_queries`):
    each recorded query row and its top matches, distances as the evaluation measured them."""
    import numpy as np

    from dynamix.evaluation.topk import TopK
    from dynamix.evaluation.visualize import plot_ranked_list

    q = query.iloc[ranked["rows"]].reset_index(drop=True)
    top = TopK(np.asarray(ranked["indices"], dtype=np.int64), np.asarray(ranked["distances"]))
    return plot_ranked_list(
        q["path"].astype(str).tolist(),
        gallery["path"].astype(str).tolist(),
        top,
        q["pid"].to_numpy(),
        gallery["pid"].to_numpy(),
        q["camid"].to_numpy(),
        gallery["camid"].to_numpy(),
        out_path,
        topk=top.indices.shape[1],
        num_queries=len(q),
    )
