"""Per-row facts about a manifest that the data-validation suites check.

Great Expectations checks one column at a time; the rules of a re-ID dataset (an identity
seen by two cameras, a query with a match in its gallery, a tracklet inside one video) are
about groups of rows. So each rule first becomes a derived column here, with plain pandas
and Pillow, and the adapter (``flows/validation.py``) states the expectation on it. A
column is null on rows a rule does not apply to (GX skips nulls), so every failing row
keeps its own ``path`` as the example.

At 10 M crops (LUPerson-NL) decoding every image would take hours, so the two costs are
split: every entry's existence and size are checked with one ``stat`` each (an in-place key
lookup for an LMDB entry; files in threads, which overlap the system calls on network
storage), and only a seeded sample of at most ``validation.decode_limit`` images per
dataset is decoded. :func:`expected_release_counts` turns a release's published counts
(``validation.published_counts``) into the counts a manifest built with given options
must have.
"""

from __future__ import annotations

import json
import logging
import os
import stat
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dynamix.config import ReleaseCounts
from dynamix.data.lmdb_store import SCHEME, open_image, stored_size
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
    try:
        with open_image(path) as im:  # a file or an lmdb:// entry
            im.load()
            return True, im.size[1], im.size[0]
    except Exception:  # Pillow raises OSError, SyntaxError, ValueError... on bad bytes
        return False, -1, -1


STAT_CHUNK = 1 << 14  # paths per thread task: large enough to amortise the pool, small enough to spread


def _stat_chunk(paths: Sequence[str]) -> np.ndarray:
    out = np.full((len(paths), 2), -1, dtype=np.int64)
    for i, path in enumerate(paths):
        try:
            st = os.stat(path)
        except (OSError, ValueError):
            continue
        if stat.S_ISREG(st.st_mode):
            out[i] = st.st_size, st.st_mtime_ns
    return out


def file_stats(paths: Sequence[str], workers: int = 4) -> np.ndarray:
    """(N, 2) int64 size and mtime_ns of every path that is a regular file, -1 elsewhere.

    One ``stat`` per path and nothing else (no open, no read), in ``workers`` threads:
    ``os.stat`` releases the GIL, so on network storage the round trips overlap; on a
    local disk it costs about 2 µs a path (20 s at 10 M).
    """
    chunks = [paths[i : i + STAT_CHUNK] for i in range(0, len(paths), STAT_CHUNK)]
    if len(chunks) <= 1 or workers <= 1:
        parts = [_stat_chunk(c) for c in chunks]
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            parts = list(pool.map(_stat_chunk, chunks))
    return np.concatenate(parts) if parts else np.zeros((0, 2), dtype=np.int64)


def image_sizes(paths: Sequence[str]) -> np.ndarray:
    """(N,) int64 encoded size of every image (a file, or an ``lmdb://`` entry), -1 if absent."""
    lmdb = np.fromiter((p.startswith(SCHEME) for p in paths), dtype=bool, count=len(paths))
    sizes = np.full(len(paths), -1, dtype=np.int64)
    files = np.flatnonzero(~lmdb)
    if len(files):
        sizes[files] = file_stats([paths[i] for i in files])[:, 0]
    for i in np.flatnonzero(lmdb):  # one B-tree lookup each; one store handle per process
        size = stored_size(paths[i])
        sizes[i] = -1 if size is None else size
    return sizes


def image_facts(paths: Sequence[str], decode: np.ndarray) -> pd.DataFrame:
    """``file_exists``/``file_bytes`` for every path; ``decodes``/``height``/``width`` where ``decode``.

    Existence and size come from :func:`image_sizes` (no image opened); then one
    streaming pass opens the sampled images one at a time (threads do not help: Pillow
    holds the GIL for most of a small image's open + decode). Rows not decoded (not
    sampled, or the file is missing) stay null so that they are neither passed nor failed.
    """
    n = len(paths)
    nbytes = image_sizes(paths)
    exists = nbytes >= 0
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
    file_bytes = pd.array(nbytes, dtype="Int64")
    file_bytes[~exists] = pd.NA  # a missing file fails file_exists only
    return pd.DataFrame(
        {"file_exists": exists, "file_bytes": file_bytes, "decodes": decodes, "height": height, "width": width}
    )


def decode_mask(n: int, sample: int, seed: int, limit: int = 0) -> np.ndarray:
    """Rows to decode: all, or a seeded random ``sample`` (when 0 < sample < n); never more
    than ``limit`` rows when ``limit`` > 0 (a seeded sample of ``limit`` then)."""
    want = sample if 0 < sample < n else n
    if 0 < limit < want:
        want = limit
    if want >= n:
        return np.ones(n, dtype=bool)
    mask = np.zeros(n, dtype=bool)
    mask[np.random.default_rng(seed).choice(n, size=want, replace=False)] = True
    return mask


def synthetic_dataset(root: str | os.PathLike[str]) -> bool:
    """Whether the synthetic world wrote the dataset at ``root``: its parent holds a
    ``world.json`` that lists the folder's name among its domains. Published counts of the
    real releases are not checked on such a dataset (it has the preset's own counts)."""
    top = Path(root)
    world = top.parent / "world.json"
    try:
        domains = json.loads(world.read_text()).get("domains") or {}
    except (OSError, ValueError, AttributeError):
        return False
    return top.name in domains


def release_key(fmt: str, options: Mapping[str, Any]) -> str:
    """The ``validation.published_counts`` key of a dataset: its format, or ``format/variant``
    where the format has variants of different sizes (CUHK03-NP labeled/detected)."""
    if fmt == "cuhk03-np":
        return f"{fmt}/{options.get('variant', 'labeled')}"
    return fmt


def _flag(options: Mapping[str, Any], key: str, default: bool) -> bool:
    value = options.get(key, default)
    return value.strip().lower() in ("true", "1", "yes", "on") if isinstance(value, str) else bool(value)


def expected_release_counts(counts: ReleaseCounts, options: Mapping[str, Any]) -> dict[str, dict[str, int | None]]:
    """``{split: {"images": n, "ids": n or None}}`` that a complete release must load to.

    ``options`` are the dataset's loader options: ``merge_val: false`` takes MSMT17's val
    images out of train (its ids are then not checked: the lists do not publish them);
    ``combine_all: true`` makes one train split of everything, distractors left out.
    """
    split = {
        name: {"images": c.images, "ids": c.ids}
        for name in ("train", "query", "gallery")
        if (c := getattr(counts, name)) is not None
    }
    if counts.val and not _flag(options, "merge_val", True):
        split["train"] = {"images": counts.train.images - counts.val, "ids": None}
    if _flag(options, "combine_all", False) and "gallery" in split:
        images = sum(s["images"] for s in split.values()) - counts.distractors
        ids = [split["train"]["ids"], split["gallery"]["ids"]]
        total = None if None in ids else sum(ids) - (1 if counts.distractors else 0)
        return {"train": {"images": images, "ids": total}}
    return split


def derive_columns(
    df: pd.DataFrame,
    *,
    fmt: str,
    decode_sample: int = 0,
    decode_limit: int = 0,
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
    decode = decode_mask(len(out), decode_sample, seed, decode_limit)
    if decode_limit and len(out) > decode_limit and not 0 < decode_sample <= decode_limit:
        log.info("%d images: decoding a seeded sample of %d (validation.decode_limit)", len(out), int(decode.sum()))
    facts = image_facts(paths, decode)
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
