"""Re-ID evaluation: Market-1501 metrics that match torchreid/fast-reid, ranked in blocks.

Public API (imported lazily so that ``dynamix --help`` does not import torch):

- :func:`evaluate_rank` (distance matrix) and :func:`evaluate_features` (features, never
  building the full matrix) → :class:`RankResult`
- :func:`topk_gallery` / :func:`topk_from_distmat`: the top-k gallery items per query
- :func:`plot_ranked_list`: a PNG grid of queries and their top-k matches
- :func:`evaluate_encoder` on :func:`target_splits`: every target domain scored for an
  embedding function, the loop the trainer, ``dynamix evaluate``, the baseline and the
  promotion gate share; :data:`METRIC_KEYS` the metric names they all report
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "EvaluationInputError": "dynamix.evaluation.inputs",
    "RankResult": "dynamix.evaluation.metrics",
    "evaluate_rank": "dynamix.evaluation.metrics",
    "evaluate_features": "dynamix.evaluation.features",
    "pairwise_distance": "dynamix.evaluation.features",
    "TopK": "dynamix.evaluation.topk",
    "topk_gallery": "dynamix.evaluation.topk",
    "topk_from_distmat": "dynamix.evaluation.topk",
    "plot_ranked_list": "dynamix.evaluation.visualize",
    "RankedListLayout": "dynamix.evaluation.visualize",
    "METRIC_KEYS": "dynamix.evaluation.targets",
    "evaluate_encoder": "dynamix.evaluation.targets",
    "target_splits": "dynamix.evaluation.targets",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
