"""What the trainer reads: the training table and (for reports) ground truth.

The training table is the ``train`` rows of every source manifest plus (unless the
single-camera ablation is off) every single-camera manifest, with contiguous
``train_pid``/``train_camid`` from :func:`~dynamix.data.manifest.relabel_for_training`.
Its ``train_pid`` is the centroid bank's id space; single-camera videos are cameras.
The target splits the trainer evaluates on come from :mod:`dynamix.evaluation.targets`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from dynamix.config import DatasetSpec, Params
from dynamix.errors import DynamixError

log = logging.getLogger(__name__)


def _read(params: Params, spec: DatasetSpec) -> pd.DataFrame:
    from dynamix.data.manifest import manifest_path, read_manifest

    path = manifest_path(params, spec.name)
    if not path.is_file():
        raise DynamixError(f"{path}: manifest not found; run `dynamix prepare` first")
    return read_manifest(path)


def train_table(params: Params, single_camera: bool = True) -> pd.DataFrame:
    """Train rows of the sources (+ single-camera sources), ids made contiguous.

    The source identities held out for model selection (:func:`selection_splits`) are
    left out: the trainer never sees them.
    """
    from dynamix.data.manifest import relabel_for_training
    from dynamix.evaluation.holdout import source_holdout

    if not params.data.sources:
        raise DynamixError("params.yaml: data.sources is empty; training needs multi-camera data")
    sources = _source_train(params)
    keep, _ = source_holdout(params, sources)
    parts = [sources[keep]]
    for spec in params.data.single_camera if single_camera else ():
        df = _read(params, spec)
        parts.append(df[df["split"] == "train"])
    table = relabel_for_training(pd.concat(parts, ignore_index=True))
    single = table["source_kind"] == "single_camera"
    log.info(
        "train table: %d multi-camera images / %d ids, %d single-camera images / %d ids",
        int((~single).sum()),
        table.loc[~single, "train_pid"].nunique(),
        int(single.sum()),
        table.loc[single, "train_pid"].nunique(),
    )
    return table


def _source_train(params: Params) -> pd.DataFrame:
    parts = [df[df["split"] == "train"] for df in (_read(params, spec) for spec in params.data.sources)]
    return pd.concat(parts, ignore_index=True)


def selection_splits(params: Params) -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    """``{"source-holdout": (query, gallery)}``, the split ``best.pt`` is chosen on (empty
    when ``train.selection.ids_per_source`` is 0)."""
    from dynamix.evaluation.holdout import source_holdout

    return source_holdout(params, _source_train(params))[1]


def true_ids(params: Params, table: pd.DataFrame) -> np.ndarray | None:
    """(N,) true person per train row (−1 junk / unknown), or None without ground truth.

    Read from ``<raw_dir>/ground_truth/<single-camera name>.parquet`` (the synthetic
    world). Used ONLY for reporting label purity, never for training.
    """
    out = np.full(len(table), -1, dtype=np.int64)
    found = False
    for spec in params.data.single_camera:
        gt_path = Path(params.data.raw_dir) / "ground_truth" / f"{spec.name}.parquet"
        rows = np.flatnonzero((table["domain"] == spec.name).to_numpy())
        if not gt_path.is_file() or len(rows) == 0:
            continue
        gt = pd.read_parquet(gt_path, columns=["path", "true_id"])
        lookup = dict(zip(gt["path"].astype(str), gt["true_id"].to_numpy(), strict=True))
        paths = table["path"].to_numpy()[rows]
        rel = [os.path.relpath(str(p), spec.root).replace(os.sep, "/") for p in paths]
        out[rows] = [lookup.get(r, -1) for r in rel]
        found = True
    return out if found else None
