"""The manifest: one table per dataset split set, the only thing training code reads.

Every loader turns a dataset folder into this table; every later stage (validation,
sampling, training, evaluation) consumes it. Keeping the schema in one place is what lets
the real datasets and the synthetic world be swapped freely.

Columns (one row per image):

==============  =========  ==============================================================
column          dtype      meaning
==============  =========  ==============================================================
path            string     image file, the dataset root joined with its relative path
pid             int64      identity inside its dataset (Market/Duke pid 0 = distractor, kept in
                           the gallery only); junk (-1) never appears; pseudo-labelled sources
                           hold pseudo pids
camid           int64      0-based camera index inside its dataset; for single-camera
                           sources every video is its own camera
domain          string     dataset name, e.g. ``market1501`` or ``market-syn``
split           string     ``train`` | ``query`` | ``gallery``
source_kind     string     ``multi_camera`` | ``single_camera``
video           string     video id for single-camera sources, else null
tracklet        string     tracklet id for single-camera sources, else null
==============  =========  ==============================================================
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from dynamix.errors import ManifestError
from dynamix.io import atomic_path, file_sha256

if TYPE_CHECKING:
    from dynamix.config import DataConfig, Params

COLUMNS: dict[str, str] = {
    "path": "string",
    "pid": "int64",
    "camid": "int64",
    "domain": "string",
    "split": "string",
    "source_kind": "string",
    "video": "string",
    "tracklet": "string",
}
SPLITS = ("train", "query", "gallery")
SOURCE_KINDS = ("multi_camera", "single_camera")
MULTI_CAMERA = "multi_camera"
SINGLE_CAMERA = "single_camera"


def manifest_path(cfg: Params | DataConfig, name: str) -> Path:
    """``<data.manifests_dir>/<name>.parquet``: where ``dynamix prepare`` writes the manifest
    of the dataset ``name`` and where every later stage reads it (one spelling, so the
    writer and the readers cannot disagree). ``cfg``: the params or their ``data`` section.
    """
    data = getattr(cfg, "data", cfg)
    return Path(data.manifests_dir) / f"{name}.parquet"


def manifest_digests(params: Params) -> dict[str, str | None]:
    """``{dataset: sha256 of its manifest file}`` for every configured dataset (None: no file).

    What a data-gate result is bound to: the gate records the digests of the manifests it
    judged, and ``dynamix train`` trusts that result only for the same bytes.
    """
    return {
        spec.name: file_sha256(path) if (path := manifest_path(params, spec.name)).is_file() else None
        for spec in params.data.all_datasets()
    }


def make_manifest(rows: dict[str, Iterable] | pd.DataFrame) -> pd.DataFrame:
    """Build a manifest with the canonical column order and dtypes, then validate it."""
    df = pd.DataFrame(rows)
    for col in ("video", "tracklet"):
        if col not in df.columns:
            df[col] = None
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ManifestError(f"manifest lacks columns {missing}; expected {list(COLUMNS)}")
    df = df[list(COLUMNS)].astype(COLUMNS)
    validate_manifest(df)
    return df.reset_index(drop=True)


def validate_manifest(df: pd.DataFrame, *, where: str = "manifest") -> None:
    """Check the schema and the id rules every consumer relies on; raise one clear error."""
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ManifestError(f"{where}: missing columns {missing}; expected {list(COLUMNS)}")
    bad_split = sorted(set(df["split"].dropna().unique()) - set(SPLITS))
    if bad_split:
        raise ManifestError(f"{where}: unknown split values {bad_split}; expected {SPLITS}")
    bad_kind = sorted(set(df["source_kind"].dropna().unique()) - set(SOURCE_KINDS))
    if bad_kind:
        raise ManifestError(f"{where}: unknown source_kind {bad_kind}; expected {SOURCE_KINDS}")
    if df[["path", "pid", "camid", "domain", "split", "source_kind"]].isna().any().any():
        raise ManifestError(f"{where}: null values in required columns")
    if (df["pid"] < 0).any():
        raise ManifestError(f"{where}: negative pid (junk must be dropped at load)")
    if (df["camid"] < 0).any():
        raise ManifestError(f"{where}: negative camid (camids are 0-based)")
    dup = df["path"].duplicated()
    if dup.any():
        raise ManifestError(f"{where}: duplicate image path {df.loc[dup, 'path'].iloc[0]}")


def split_counts(df: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Images, identities and cameras per split present, in train/query/gallery order."""
    out: dict[str, dict[str, int]] = {}
    for split in SPLITS:
        part = df[df["split"] == split]
        if len(part):
            out[split] = {
                "images": len(part),
                "ids": int(part["pid"].nunique()),
                "cameras": int(part["camid"].nunique()),
            }
    return out


def format_counts(counts: dict[str, dict[str, int]]) -> str:
    """``train: 120 images, 12 ids, 6 cameras | query: ...`` for one log line."""
    return " | ".join(
        f"{split}: {c['images']} images, {c['ids']} ids, {c['cameras']} cameras" for split, c in counts.items()
    )


def write_manifest(df: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Validate and write a manifest as Parquet, atomically."""
    validate_manifest(df, where=str(path))
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)
    return Path(path)


def read_manifest(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a Parquet manifest and check it, naming the file in any error."""
    p = Path(path)
    if not p.is_file():
        raise ManifestError(f"{p}: manifest not found; build it with `dynamix manifest`")
    try:
        df = pd.read_parquet(p)
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise ManifestError(f"{p}: not a readable Parquet manifest ({exc})") from exc
    validate_manifest(df, where=str(p))
    return df.astype(COLUMNS)


def combine_all_splits(df: pd.DataFrame, drop_pids: Iterable[int] = ()) -> pd.DataFrame:
    """Every split of one labelled dataset as training data (torchreid ``combineall``).

    Query and gallery rows become ``train`` rows; their pids are offset past the largest
    train pid, the same offset for query and gallery (they share one id space), so a test
    pid never fuses with a train pid even where the release renumbers its test ids from 0
    (MSMT17). Rows whose pid is in ``drop_pids`` in query/gallery are left out, as the
    peers leave out their ``_junk_pids`` (Market-1501's distractor pid 0); junk (-1) never
    reaches a manifest. Cameras are kept.
    """
    test = df["split"].isin(["query", "gallery"])
    keep = ~(test & df["pid"].isin(list(drop_pids)))
    out = df[keep].copy()
    train_pids = out.loc[out["split"] == "train", "pid"]
    offset = int(train_pids.max()) + 1 if len(train_pids) else 0
    moved = out["split"] != "train"
    out.loc[moved, "pid"] = out.loc[moved, "pid"] + offset
    out["split"] = "train"
    return make_manifest(out)


def relabel_for_training(train: pd.DataFrame) -> pd.DataFrame:
    """Give multi-source training rows contiguous ``train_pid``/``train_camid`` columns.

    Ids are prefixed with their dataset name before relabelling so sources never collide
    (pid 5 of Market and pid 5 of Duke are different people). Only ``split == "train"``
    rows are accepted: test identities must never enter training.
    """
    if (train["split"] != "train").any():
        raise ManifestError("relabel_for_training got query/gallery rows; pass train rows only")
    out = train.copy()
    pid_key = out["domain"].astype(str) + "/" + out["pid"].astype(str)
    cam_key = out["domain"].astype(str) + "/" + out["camid"].astype(str)
    out["train_pid"] = pd.factorize(pid_key, sort=True)[0].astype("int64")
    out["train_camid"] = pd.factorize(cam_key, sort=True)[0].astype("int64")
    return out
