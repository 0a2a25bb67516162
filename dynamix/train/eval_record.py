"""What a checkpoint records about its own evaluation, so later steps need no feature pass.

The trainer evaluates every target at ``eval_every`` and saves ``best.pt`` right after;
the pipeline then needs the same numbers again (the promotion gate) and a ranked-list
picture per target. Extracting every query and gallery feature a second (and third) time
from ``best.pt`` only reproduces what the trainer computed. So each evaluation records:

- ``evaluated_on``: the encoder, the metric, ``max_rank`` and a fingerprint of every
  target's query and gallery rows (:func:`~dynamix.evaluation.targets.split_fingerprint`);
- ``ranked``: the top-k gallery rows of a few evenly spread queries per target
  (:func:`~dynamix.evaluation.targets.rank_queries`, computed by ``evaluate_encoder``).

A reader reuses a target's numbers only while all of these match the current params and
manifests (:func:`reusable_targets`); otherwise it extracts features as before.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from dynamix.config import Params
from dynamix.evaluation.targets import split_fingerprint


def evaluated_on(params: Params, splits: dict[str, tuple[pd.DataFrame, pd.DataFrame]], encoder: str) -> dict[str, Any]:
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
        name for name, fingerprint in current["targets"].items() if name in done and prints.get(name) == fingerprint
    ]
