"""MSMT17 (V1 and V2): image folders plus list files that carry the labels.

Layout::

    root/train/ + root/test/                   (V1)
    root/mask_train_v2/ + root/mask_test_v2/   (V2)
    root/list_train.txt, list_val.txt          paths relative to the train folder
    root/list_query.txt, list_gallery.txt      paths relative to the test folder

Each list line is ``<relative/path.jpg> <pid>``, e.g.
``0000/0000_000_01_0303morning_0015_0.jpg 0``. The camera is the third ``_`` field of the
file name (1..15), stored 0-based as ``camid``.

Pids are taken as listed (already 0-based, and pid 0 is a real person here: the
"0 = distractor" rule belongs to Market-1501 file names only).

Validation split: DG papers train on train+val (32,621 images / 1,041 ids), so
``merge_val=True`` (the default) adds ``list_val.txt`` rows to ``train``. With
``merge_val=False`` the val rows are dropped (``list_val.txt`` is not even read): the
manifest has no split for them, and they must not leak into the test splits.

Only listed files enter the manifest, as in torchreid; an image file of another extension
than the list's ``.jpg`` (a ``.png`` or ``.JPG`` copy) in the image folders is reported
in one warning with its count. ``root`` may also be the folder the peers take, above the
release (torchreid's ``data/msmt17/MSMT17_V1``): the one release found below is read.

``combine_all=True`` (torchreid ``combineall``) makes query and gallery training data
too, their pids offset past the train pids, since MSMT17 numbers its test pids from 0
again and they are other people (:func:`~dynamix.data.manifest.combine_all_splits`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pandas as pd

from dynamix.data.layout import (
    LIST_LINE_HINT,
    extract,
    find_release_root,
    first_false,
    is_image_name,
    join_paths,
    layout_error,
    list_files_recursive,
    read_list_file,
    require_dir,
    require_file,
    require_listed_files,
    to_int,
    warn_other_images,
)
from dynamix.data.manifest import MULTI_CAMERA, combine_all_splits, make_manifest
from dynamix.errors import DynamixError

log = logging.getLogger(__name__)

VERSION_FOLDERS = {"v1": ("train", "test"), "v2": ("mask_train_v2", "mask_test_v2")}
LIST_FILES = {
    "train": "list_train.txt",
    "val": "list_val.txt",
    "query": "list_query.txt",
    "gallery": "list_gallery.txt",
}
NUM_CAMERAS = 15
EXTENSION = ".jpg"  # the list files' images; other image files in the folders are reported
EXAMPLE = "0000_000_01_0303morning_0015_0.jpg"
# The third "_" field of the base name (the part after the last "/").
CAMERA_PATTERN = r"(?:^|/)[^_/]*_[^_/]*_(?P<cam>\d{1,9})(?:[_.][^/]*)?$"
LAYOUT_HINT = (
    "train/ and test/ (V1) or mask_train_v2/ and mask_test_v2/ (V2) beside "
    "list_train.txt, list_val.txt, list_query.txt, list_gallery.txt"
)


def load_msmt17(
    root: str | os.PathLike[str],
    domain: str = "msmt17",
    merge_val: bool = True,
    version: str | None = None,
    combine_all: bool = False,
) -> pd.DataFrame:
    """Manifest of an MSMT17 V1/V2 folder; ``version`` (``v1``/``v2``) overrides detection."""
    base = find_release(root)
    version = resolve_version(base, version)
    train_name, test_name = VERSION_FOLDERS[version]
    train_dir = require_dir(base / train_name, f"the MSMT17 {version.upper()} {train_name}/ folder")
    test_dir = require_dir(base / test_name, f"the MSMT17 {version.upper()} {test_name}/ folder")
    plan = [("train", "train", train_dir)]
    if merge_val:
        plan.append(("val", "train", train_dir))
    plan += [("query", "query", test_dir), ("gallery", "gallery", test_dir)]

    scanned: dict[Path, list[str]] = {}
    parts = []
    for key, split, folder in plan:
        if folder not in scanned:
            scanned[folder] = list_files_recursive(folder)
        parts.append(read_split_list(base / LIST_FILES[key], folder, scanned[folder], split))
    others = [
        f"{folder.name}/{rel}" for folder, names in scanned.items() for rel in names if not rel.endswith(EXTENSION)
    ]
    warn_other_images(f"{domain} (MSMT17)", base, [r for r in others if is_image_name(r)], (EXTENSION,))
    df = pd.concat(parts, ignore_index=True)
    df["domain"] = domain
    df["source_kind"] = MULTI_CAMERA
    manifest = make_manifest(df)
    counts = manifest["split"].value_counts()
    log.info(
        "%s (MSMT17 %s at %s, val %s): train %d, query %d, gallery %d images",
        domain,
        version.upper(),
        base,
        "merged into train" if merge_val else "dropped",
        counts.get("train", 0),
        counts.get("query", 0),
        counts.get("gallery", 0),
    )
    if combine_all:
        manifest = combine_all_splits(manifest)
        log.info(
            "%s: combine_all: %d training images of %d ids (test pids offset past the train pids)",
            domain,
            len(manifest),
            manifest["pid"].nunique(),
        )
    return manifest


def is_release(path: Path) -> bool:
    """An MSMT17 release folder: one holding a list file."""
    return any((path / name).is_file() for name in LIST_FILES.values())


def find_release(root: str | os.PathLike[str]) -> Path:
    """``root``, or the one MSMT17 release below it (``data/msmt17/MSMT17_V1``)."""
    return find_release_root(root, "MSMT17", is_release, f"an MSMT17 root holding {LAYOUT_HINT}", "msmt")


def resolve_version(base: Path, version: str | None) -> str:
    """``v1``/``v2`` from the argument, else from which image folders exist under ``base``."""
    if version is not None:
        v = str(version).strip().lower()
        v = f"v{v}" if v in ("1", "2") else v
        if v not in VERSION_FOLDERS:
            raise DynamixError(f"msmt17: unknown version {version!r}; expected 'v1' or 'v2'")
        return v
    found = [v for v, names in VERSION_FOLDERS.items() if any((base / n).is_dir() for n in names)]
    if not found:
        raise layout_error(base, "no MSMT17 image folders found", LAYOUT_HINT)
    if len(found) > 1:
        raise layout_error(
            base, "holds both V1 and V2 image folders", "one version, or pass version=v1|v2"
        )
    return found[0]


def read_split_list(list_file: Path, folder: Path, existing: set[str], split: str) -> pd.DataFrame:
    """Rows ``path, pid, camid, split`` of one list file, every entry checked."""
    require_file(list_file, f"an MSMT17 list file with lines {LIST_LINE_HINT}")
    table = read_list_file(list_file)
    if table.empty:
        raise layout_error(list_file, "no entries", f"lines {LIST_LINE_HINT}")
    require_listed_files(table, folder, existing, list_file)
    groups, ok = extract(table["rel"].tolist(), CAMERA_PATTERN)
    bad = first_false(ok)
    if bad is not None:
        raise layout_error(
            f"{list_file}:{table['line'].iloc[bad]}",
            f"no camera field in file name {table['rel'].iloc[bad]}",
            f"MSMT17 names like {EXAMPLE} (third '_' field = camera 1..{NUM_CAMERAS})",
        )
    cam = to_int(groups["cam"])
    bad = first_false((cam >= 1) & (cam <= NUM_CAMERAS))
    if bad is not None:
        raise layout_error(
            f"{list_file}:{table['line'].iloc[bad]}",
            f"camera {cam[bad]} of {table['rel'].iloc[bad]} out of range 1..{NUM_CAMERAS}",
            f"MSMT17 names like {EXAMPLE}",
        )
    return pd.DataFrame(
        {
            "path": join_paths(folder, table["rel"].to_numpy()),
            "pid": table["pid"].to_numpy(),
            "camid": cam - 1,
            "split": split,
        }
    )
