"""Market-1501 and DukeMTMC-reID: three folders of images whose names carry pid and camera.

Layout (shared by both, and by the CUHK03-NP folder release)::

    root/bounding_box_train/0002_c1s1_000451_03.jpg   -> split train
    root/query/...                                     -> split query
    root/bounding_box_test/...                         -> split gallery

A name starts with ``<pid>_c<camera>`` (the reference regex ``([-\\d]+)_c(\\d)``, here
anchored at the start of the name, digit runs bounded to fit int64): Market
``0002_c1s1_000451_03.jpg``, Duke ``0005_c2_f0046985.jpg``. Rules, from the Market-1501
evaluation protocol:

- pid ``-1`` marks junk boxes that the protocol ignores: they are dropped here, at load,
  so no later stage has to remember to;
- pid ``0`` marks distractors: real gallery entries of nobody in the query, kept in the
  gallery; a pid 0 in train or query is a corrupt dataset and raises;
- cameras are 1-based in names and 0-based (``camid``) in the manifest; a camera outside
  the dataset's range (Market 1..6, Duke 1..8) raises, naming the file.

Non-image files (the real archives ship ``Thumbs.db``) are ignored; an image file whose
name does not start with ``<pid>_c<camera>`` raises, naming it. Only ``*.jpg`` is read,
as torchreid and fast-reid glob it (CUHK03-NP: ``*.png``); other image files (a ``.png``
or ``.JPG`` copy) are left out with one warning giving their count.

``root`` may be the release folder or the folder the peers take, above it (``data/``
holding ``Market-1501-v15.09.15/``; torchreid's ``data/market1501/Market-1501-v15.09.15``):
the one release found is read, and the log says which (:func:`~dynamix.data.layout.
find_release_root`).

``combine_all=True`` (torchreid ``combineall``) makes query and gallery training data too:
see :func:`~dynamix.data.manifest.combine_all_splits`; distractors (pid 0) are left out
of it, as the peers do.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from dynamix.data.layout import (
    extract,
    find_release_root,
    first_false,
    join_paths,
    layout_error,
    require_dir,
    scan_images,
    to_int,
    warn_other_images,
)
from dynamix.data.manifest import MULTI_CAMERA, combine_all_splits, make_manifest

log = logging.getLogger(__name__)

SPLIT_FOLDERS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}
NAME_PATTERN = r"^(?P<pid>-?\d{1,18})_c(?P<cam>\d{1,9})"  # bounded: fits int64
JUNK_PID = -1
DISTRACTOR_PID = 0


@dataclass(frozen=True)
class FolderFormat:
    """What distinguishes one Market-style dataset from another: its name, cameras, the
    image extension the peers glob, and a pattern its release folder's name matches."""

    title: str
    example: str
    num_cameras: int
    extensions: tuple[str, ...] = (".jpg",)
    name_hint: str | None = None

    @property
    def expected(self) -> str:
        return f"{self.title} files like {self.example}"


MARKET1501 = FolderFormat("Market-1501", "0002_c1s1_000451_03.jpg", num_cameras=6, name_hint="market")
DUKEMTMC = FolderFormat("DukeMTMC-reID", "0005_c2_f0046985.jpg", num_cameras=8, name_hint="duke")


def load_market1501(
    root: str | os.PathLike[str], domain: str = "market1501", combine_all: bool = False
) -> pd.DataFrame:
    """Manifest of a Market-1501 folder (train/query/gallery; junk dropped)."""
    return load_folder_dataset(find_folder_release(root, MARKET1501), MARKET1501, domain, combine_all)


def load_dukemtmc(
    root: str | os.PathLike[str], domain: str = "dukemtmc", combine_all: bool = False
) -> pd.DataFrame:
    """Manifest of a DukeMTMC-reID folder (same layout and rules as Market-1501)."""
    return load_folder_dataset(find_folder_release(root, DUKEMTMC), DUKEMTMC, domain, combine_all)


def is_folder_release(path: Path) -> bool:
    """A folder holding at least one of the three split folders."""
    return any((path / f).is_dir() for f in SPLIT_FOLDERS.values())


def find_folder_release(root: str | os.PathLike[str], fmt: FolderFormat) -> Path:
    """``root``, or the one release folder below it that holds the split folders."""
    folders = ", ".join(f"{f}/" for f in SPLIT_FOLDERS.values())
    expected = f"a {fmt.title} root holding {folders}"
    return find_release_root(root, fmt.title, is_folder_release, expected, fmt.name_hint)


def load_folder_dataset(
    root: str | os.PathLike[str], fmt: FolderFormat, domain: str, combine_all: bool = False
) -> pd.DataFrame:
    """Read the three split folders under ``root`` into one validated manifest."""
    folders = ", ".join(f"{f}/" for f in SPLIT_FOLDERS.values())
    base = require_dir(root, f"a {fmt.title} root holding {folders}")
    parts, others = [], []
    for split, folder in SPLIT_FOLDERS.items():
        rows, other = read_split_folder(base, split, folder, fmt)
        parts.append(rows)
        others += [f"{folder}/{name}" for name in other]
    warn_other_images(f"{domain} ({fmt.title})", base, others, fmt.extensions)
    df = pd.concat(parts, ignore_index=True)
    df["domain"] = domain
    df["source_kind"] = MULTI_CAMERA
    manifest = make_manifest(df)
    counts = manifest["split"].value_counts()
    log.info(
        "%s (%s at %s): train %d, query %d, gallery %d images",
        domain,
        fmt.title,
        base,
        counts.get("train", 0),
        counts.get("query", 0),
        counts.get("gallery", 0),
    )
    if combine_all:
        manifest = combine_all_splits(manifest, drop_pids=(DISTRACTOR_PID,))
        log.info(
            "%s: combine_all: %d training images of %d ids (query and gallery included, distractors left out)",
            domain,
            len(manifest),
            manifest["pid"].nunique(),
        )
    return manifest


def read_split_folder(
    base: Path, split: str, folder_name: str, fmt: FolderFormat
) -> tuple[pd.DataFrame, list[str]]:
    """Rows ``path, pid, camid, split`` of one folder, junk dropped, every name checked;
    and the names of the image files of another extension, left out."""
    folder = require_dir(base / folder_name, f"the {fmt.title} {folder_name}/ folder")
    taken, other = scan_images(folder, fmt.extensions)
    names = np.array(taken, dtype=object)
    if not len(names):
        exts = "/".join(f"*{e}" for e in fmt.extensions)
        problem = f"no {exts} images found, only {len(other)} others (e.g. {other[0]})" if other else "no images found"
        raise layout_error(folder, problem, fmt.expected)
    groups, ok = extract(names, NAME_PATTERN)
    bad = first_false(ok)
    if bad is not None:
        raise layout_error(
            folder / names[bad], "name does not start with <pid>_c<camera>", fmt.expected
        )
    pid, cam = to_int(groups["pid"]), to_int(groups["cam"])
    check_ids(folder, names, pid, cam, split, fmt)
    keep = pid != JUNK_PID
    if not keep.any():
        raise layout_error(folder, "only junk images (pid -1) found", fmt.expected)
    log.debug(
        "%s: %d images, %d junk dropped, %d distractors",
        folder,
        int(keep.sum()),
        int((~keep).sum()),
        int((pid == DISTRACTOR_PID).sum()),
    )
    rows = pd.DataFrame(
        {
            "path": join_paths(folder, names[keep]),
            "pid": pid[keep],
            "camid": cam[keep] - 1,
            "split": split,
        }
    )
    return rows, other


def check_ids(
    folder: Path, names: np.ndarray, pid: np.ndarray, cam: np.ndarray, split: str, fmt: FolderFormat
) -> None:
    """Raise for the first file whose camera is out of range or whose pid breaks the rules."""
    bad = first_false((cam >= 1) & (cam <= fmt.num_cameras))
    if bad is not None:
        raise layout_error(
            folder / names[bad],
            f"camera c{cam[bad]} out of range c1..c{fmt.num_cameras}",
            fmt.expected,
        )
    bad = first_false(pid >= JUNK_PID)
    if bad is not None:
        raise layout_error(
            folder / names[bad], f"pid {pid[bad]} is negative", "-1 (junk) or a pid >= 0"
        )
    bad = first_false(pid != DISTRACTOR_PID) if split != "gallery" else None
    if bad is not None:
        raise layout_error(
            folder / names[bad],
            f"pid 0 (distractor) in {folder.name}/",
            "distractors in bounding_box_test/ only",
        )
