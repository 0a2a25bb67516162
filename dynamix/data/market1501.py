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
name does not start with ``<pid>_c<camera>`` raises, naming it.
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
    first_false,
    join_paths,
    layout_error,
    list_images,
    require_dir,
    to_int,
)
from dynamix.data.manifest import MULTI_CAMERA, make_manifest

log = logging.getLogger(__name__)

SPLIT_FOLDERS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}
NAME_PATTERN = r"^(?P<pid>-?\d{1,18})_c(?P<cam>\d{1,9})"  # bounded: fits int64
JUNK_PID = -1
DISTRACTOR_PID = 0


@dataclass(frozen=True)
class FolderFormat:
    """What distinguishes one Market-style dataset from another: its name and cameras."""

    title: str
    example: str
    num_cameras: int

    @property
    def expected(self) -> str:
        return f"{self.title} files like {self.example}"


MARKET1501 = FolderFormat("Market-1501", "0002_c1s1_000451_03.jpg", num_cameras=6)
DUKEMTMC = FolderFormat("DukeMTMC-reID", "0005_c2_f0046985.jpg", num_cameras=8)


def load_market1501(root: str | os.PathLike[str], domain: str = "market1501") -> pd.DataFrame:
    """Manifest of a Market-1501 folder (train/query/gallery; junk dropped)."""
    return load_folder_dataset(root, MARKET1501, domain)


def load_dukemtmc(root: str | os.PathLike[str], domain: str = "dukemtmc") -> pd.DataFrame:
    """Manifest of a DukeMTMC-reID folder (same layout and rules as Market-1501)."""
    return load_folder_dataset(root, DUKEMTMC, domain)


def load_folder_dataset(
    root: str | os.PathLike[str], fmt: FolderFormat, domain: str
) -> pd.DataFrame:
    """Read the three split folders under ``root`` into one validated manifest."""
    folders = ", ".join(f"{f}/" for f in SPLIT_FOLDERS.values())
    base = require_dir(root, f"a {fmt.title} root holding {folders}")
    parts = [read_split_folder(base, split, folder, fmt) for split, folder in SPLIT_FOLDERS.items()]
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
    return manifest


def read_split_folder(base: Path, split: str, folder_name: str, fmt: FolderFormat) -> pd.DataFrame:
    """Rows ``path, pid, camid, split`` of one folder, junk dropped, every name checked."""
    folder = require_dir(base / folder_name, f"the {fmt.title} {folder_name}/ folder")
    names = np.array(list_images(folder), dtype=object)
    if not len(names):
        raise layout_error(folder, "no images found", fmt.expected)
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
    return pd.DataFrame(
        {
            "path": join_paths(folder, names[keep]),
            "pid": pid[keep],
            "camid": cam[keep] - 1,
            "split": split,
        }
    )


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
