"""Per-row facts about a manifest that the data-validation suites check.

Great Expectations checks one column at a time; the rules of a re-ID dataset (an identity
seen by two cameras, a query with a match in its gallery, a tracklet inside one video) are
about groups of rows. So each rule first becomes a derived column here, with plain pandas
and Pillow, and the adapter (``flows/validation.py``) states the expectation on it. A
column is null on rows a rule does not apply to (GX skips nulls), so every failing row
keeps its own ``path`` as the example.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from dynamix.data.manifest import COLUMNS
from dynamix.errors import ManifestError

log = logging.getLogger(__name__)

# Market-1501 / DukeMTMC file names use pid 0 for distractors, kept in the gallery only.
DISTRACTOR_FORMATS = ("market1501", "dukemtmc")


def read_manifest_unchecked(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a manifest without :func:`validate_manifest`: the suites report what is wrong."""
    p = Path(path)
    if not p.is_file():
        raise ManifestError(f"{p}: manifest not found; build it with `dynamix prepare`")
    df = pd.read_parquet(p)
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ManifestError(f"{p}: missing columns {missing}; expected {list(COLUMNS)}")
    return df.reset_index(drop=True)


def _decode(path: str) -> tuple[bool, int, int]:
    """(decodes, height, width) of one image file; (False, -1, -1) for bad bytes."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
            return True, im.size[1], im.size[0]
    except Exception:  # Pillow raises OSError, SyntaxError, ValueError... on bad bytes
        return False, -1, -1


def image_facts(paths: Sequence[str], decode: np.ndarray) -> pd.DataFrame:
    """``file_exists`` for every path; ``decodes``/``height``/``width`` where ``decode``.

    One streaming pass, one image open at a time (threads do not help: Pillow holds the
    GIL for most of a small image's open + decode). Rows not decoded (not sampled, or the
    file is missing) stay null so that they are neither passed nor failed.
    """
    n = len(paths)
    exists = np.fromiter((os.path.isfile(p) for p in paths), dtype=bool, count=n)
    rows = np.flatnonzero(decode & exists)
    found = [_decode(paths[i]) for i in rows]
    ok, done = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    size = np.zeros((n, 2), dtype=np.int64)
    done[rows] = True
    if found:
        ok[rows] = [f[0] for f in found]
        size[rows] = [f[1:] for f in found]
    decodes = pd.array(ok, dtype="boolean")
    decodes[~done] = pd.NA
    height, width = (pd.array(size[:, i], dtype="Int64") for i in (0, 1))
    height[~ok], width[~ok] = pd.NA, pd.NA
    return pd.DataFrame({"file_exists": exists, "decodes": decodes, "height": height, "width": width})


def decode_mask(n: int, sample: int, seed: int) -> np.ndarray:
    """Rows to decode: all when ``sample`` is 0 or ≥ n, else a seeded random ``sample``."""
    if sample <= 0 or sample >= n:
        return np.ones(n, dtype=bool)
    mask = np.zeros(n, dtype=bool)
    mask[np.random.default_rng(seed).choice(n, size=sample, replace=False)] = True
    return mask


def derive_columns(
    df: pd.DataFrame,
    *,
    fmt: str,
    decode_sample: int = 0,
    seed: int = 0,
    renumbered_test_pids: bool = False,
) -> pd.DataFrame:
    """The manifest plus one column per group rule (see the module docstring).

    - ``num_train_cameras_of_pid``: cameras of the row's pid in train (train rows only)
    - ``query_has_cross_camera_match``: a gallery row with the same pid and another camera
      exists (query rows only)
    - ``pid_in_train_and_test``: a query/gallery row whose pid is also in train (null on
      train rows, distractors, and when test pids are renumbered, as in MSMT17)
    - ``videos_of_tracklet`` / ``videos_of_pid``: videos a tracklet / pseudo pid spans
      (single-camera rows only)
    """
    out = df.copy()
    paths = out["path"].astype(str).tolist()
    facts = image_facts(paths, decode_mask(len(out), decode_sample, seed))
    out = pd.concat([out, facts], axis=1)

    split = out["split"].astype("string")
    is_train, is_query = (split == "train").fillna(False), (split == "query").fillna(False)
    is_test = split.isin(["query", "gallery"]).fillna(False)

    cams = out[is_train].groupby("pid")["camid"].nunique()
    out["num_train_cameras_of_pid"] = out["pid"].map(cams).where(is_train).astype("Int64")

    gallery = out[split == "gallery"][["pid", "camid"]].dropna().drop_duplicates()
    query = out.loc[is_query, ["pid", "camid"]].reset_index()
    pairs = query.merge(gallery, on="pid", how="left", suffixes=("", "_g"))
    pairs["hit"] = pairs["camid_g"].notna() & (pairs["camid_g"] != pairs["camid"])
    hit = pairs.groupby("index")["hit"].any()
    out["query_has_cross_camera_match"] = pd.array([None] * len(out), dtype="boolean")
    out.loc[hit.index, "query_has_cross_camera_match"] = hit.to_numpy()

    out["pid_in_train_and_test"] = pd.array([None] * len(out), dtype="boolean")
    if not renumbered_test_pids:
        distractor = (out["pid"] == 0) & (fmt in DISTRACTOR_FORMATS)
        train_pids = set(out.loc[is_train, "pid"].dropna())
        test_pids = set(out.loc[is_test & ~distractor.fillna(False), "pid"].dropna())
        both = out["pid"].isin(train_pids & test_pids)
        applies = is_test & ~distractor.fillna(False)  # the leaked test rows are the examples
        out.loc[applies, "pid_in_train_and_test"] = both[applies].to_numpy()

    single = (out["source_kind"] == "single_camera").fillna(False)
    for key, name in (("tracklet", "videos_of_tracklet"), ("pid", "videos_of_pid")):
        spans = out[single].groupby(key)["video"].nunique()
        out[name] = out[key].map(spans).where(single).astype("Int64")
    return out
