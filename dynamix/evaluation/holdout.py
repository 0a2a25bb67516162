"""The split that picks ``best.pt``: a few labelled source identities held out of training.

In domain generalisation the targets are unseen by definition; choosing a checkpoint by
their mAP would be a test-set leak, and the registered model is ``best.pt``. So the
trainer selects on identities of the *labelled sources* that it never trains on: per
source, ``train.selection.ids_per_source`` train identities seen by at least two cameras
(seeded by ``data.seed``, so every run and variant holds out the same people). Their
images form one query/gallery split, ``source-holdout``: one query per (identity,
camera), the rest gallery, scored with the Market-1501 protocol (a query's same-camera
matches are ignored), so it asks the cross-camera question the targets ask, on the
sources' own styles. The targets are still evaluated, but only reported and gated.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from dynamix.config import Params

log = logging.getLogger(__name__)

HOLDOUT = "source-holdout"  # the split's name in metrics, logs and ``selected_by``
MAX_SHARE = 0.25  # never hold out more than this share of a source's identities


def holdout_pids(train: pd.DataFrame, ids_per_source: int, seed: int) -> dict[str, np.ndarray]:
    """``{domain: (n,) pids}`` held out of the source ``train`` rows (columns domain/pid/camid).

    Only identities seen by >= 2 cameras qualify (a query needs a cross-camera match); at
    most :data:`MAX_SHARE` of a source's identities, at least one where two qualify.
    """
    out: dict[str, np.ndarray] = {}
    if ids_per_source <= 0:
        return out
    for i, (domain, rows) in enumerate(train.groupby("domain", sort=True)):
        cams = rows.groupby("pid")["camid"].nunique()
        eligible = np.sort(cams.index[cams.to_numpy() >= 2].to_numpy())
        n = min(ids_per_source, int(MAX_SHARE * rows["pid"].nunique()))
        n = max(n, 1) if len(eligible) >= 2 else 0
        if n == 0:
            continue
        rng = np.random.default_rng([seed, i, 7])
        out[str(domain)] = np.sort(rng.choice(eligible, size=min(n, len(eligible)), replace=False))
    return out


def is_held_out(rows: pd.DataFrame, held: dict[str, np.ndarray]) -> np.ndarray:
    """(N,) bool: the row's (domain, pid) is held out."""
    mask = np.zeros(len(rows), dtype=bool)
    for domain, pids in held.items():
        mask |= ((rows["domain"] == domain) & rows["pid"].isin(pids)).to_numpy()
    return mask


def holdout_split(rows: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(query, gallery) of the held-out ``rows``: one seeded query per (identity, camera).

    Pids are made unique across sources (``<domain>/<pid>`` codes), since two sources'
    pid 5 are different people.
    """
    rows = rows.reset_index(drop=True).copy()
    key = rows["domain"].astype(str) + "/" + rows["pid"].astype(str)
    rows["pid"] = pd.factorize(key, sort=True)[0].astype(np.int64)
    rng = np.random.default_rng([seed, 11])
    order = rng.permutation(len(rows))
    first = ~rows.iloc[order].duplicated(["pid", "camid"]).to_numpy()
    is_query = np.zeros(len(rows), dtype=bool)
    is_query[order[first]] = True
    query = rows[is_query].assign(split="query").reset_index(drop=True)
    gallery = rows[~is_query].assign(split="gallery").reset_index(drop=True)
    return query, gallery


def source_holdout(params: Params, source_train: pd.DataFrame) -> tuple[np.ndarray, dict[str, tuple]]:
    """(train mask (N,), ``{HOLDOUT: (query, gallery)}``) for the sources' ``train`` rows.

    Empty splits (``ids_per_source: 0``, or no source with two qualifying identities)
    mean no selection split: ``best.pt`` is then the final step.
    """
    sel = params.train.selection
    held = holdout_pids(source_train, sel.ids_per_source, params.data.seed)
    mask = is_held_out(source_train, held)
    if not mask.any():
        return ~mask, {}
    query, gallery = holdout_split(source_train[mask], params.data.seed)
    log.info(
        "%s: %d identities of %s held out of training (%d query / %d gallery images); best.pt is chosen on it",
        HOLDOUT,
        sum(len(p) for p in held.values()),
        ", ".join(held),
        len(query),
        len(gallery),
    )
    return ~mask, {HOLDOUT: (query, gallery)}
