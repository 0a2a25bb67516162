"""Single-camera pseudo-labelled sources (LUPerson-NL style): our on-disk contract.

Layout::

    root/images/<video>/<tracklet>_<frame>.jpg     e.g. images/v00017/t000123_f0004.jpg
    root/pseudo_labels.txt                         one line per image:
                                                   images/v00017/t000123_f0004.jpg 5012

The pseudo pid (>= 0) comes from tracking inside one video, so it is noisy (a person seen
in two videos has two pids; a track may switch identity or hold junk crops). Rows are
therefore marked ``source_kind = single_camera``, which tells validation and training
that pid 0 is an ordinary pseudo id and that the relabeling module may rewrite these pids.

Every video is its own camera: ``camid`` is the video's index in the sorted list of video
names present in the list file. ``video`` and ``tracklet`` hold the path components as
written (``v00017``, ``t000123``); tracklet names are only unique inside their video, so
group by ``(video, tracklet)``. Only listed images enter the manifest (an image left out
of the list is treated as filtered out by the labeller, and only counted in the log).
"""

from __future__ import annotations

import logging
import os

import numpy as np
import pandas as pd
import pyarrow.compute as pc

from dynamix.data.layout import (
    IMAGE_EXTENSIONS,
    LIST_LINE_HINT,
    extract,
    first_false,
    join_paths,
    layout_error,
    list_files_recursive,
    read_list_file,
    require_dir,
    require_file,
    require_listed_files,
)
from dynamix.data.manifest import SINGLE_CAMERA, make_manifest

log = logging.getLogger(__name__)

IMAGES_DIR = "images"
LIST_FILE = "pseudo_labels.txt"
EXAMPLE = "images/v00017/t000123_f0004.jpg"
_EXT = "|".join(e.lstrip(".") for e in IMAGE_EXTENSIONS)
PATH_PATTERN = (
    rf"^{IMAGES_DIR}/(?P<video>[^/]+)/(?P<tracklet>[^/_]+)_(?P<frame>[^/]+)\.(?i:{_EXT})$"
)


def load_single_camera(root: str | os.PathLike[str], domain: str) -> pd.DataFrame:
    """Manifest (all ``train``) of a pseudo-labelled single-camera source under ``root``."""
    expected_root = f"a single-camera source root holding {IMAGES_DIR}/ and {LIST_FILE}"
    base = require_dir(root, expected_root)
    images = require_dir(base / IMAGES_DIR, f"{IMAGES_DIR}/<video>/<tracklet>_<frame>.jpg files")
    list_file = require_file(base / LIST_FILE, f"lines like '{EXAMPLE} 5012'")
    table = read_list_file(list_file)
    if table.empty:
        raise layout_error(list_file, "no entries", f"lines {LIST_LINE_HINT}")

    groups, ok = extract(table["rel"].tolist(), PATH_PATTERN)
    bad = first_false(ok)
    if bad is not None:
        raise layout_error(
            f"{list_file}:{table['line'].iloc[bad]}",
            f"path {table['rel'].iloc[bad]} does not match {IMAGES_DIR}/<video>/<tracklet>_<frame>",
            f"paths like {EXAMPLE}",
        )
    existing = list_files_recursive(images, prefix=f"{IMAGES_DIR}/")
    require_listed_files(table, base, existing, list_file)

    names = pc.unique(groups["video"])
    videos = names.take(pc.array_sort_indices(names))  # camid = index in sorted video names
    camid = pc.index_in(groups["video"], value_set=videos).to_numpy(zero_copy_only=False)
    manifest = make_manifest(
        {
            "path": join_paths(base, table["rel"].to_numpy()),
            "pid": table["pid"].to_numpy(),
            "camid": camid.astype(np.int64),
            "domain": domain,
            "split": "train",
            "source_kind": SINGLE_CAMERA,
            "video": groups["video"].to_numpy(zero_copy_only=False),
            "tracklet": groups["tracklet"].to_numpy(zero_copy_only=False),
        }
    )
    log_summary(manifest, domain, len(videos), len(existing) - len(table))
    return manifest


def log_summary(manifest: pd.DataFrame, domain: str, num_videos: int, unlisted: int) -> None:
    """One line of counts, plus a warning when a pseudo id spans several videos.

    Such a pid breaks the single-camera assumption (the tracker never sees two videos),
    which usually means two label files were concatenated without offsetting their ids.
    """
    videos_per_pid = manifest.groupby("pid", sort=False)["video"].nunique()
    tracklets = manifest[["video", "tracklet"]].drop_duplicates()
    log.info(
        "%s (single-camera): %d images, %d pseudo ids, %d tracklets, %d videos; "
        "%d unlisted images ignored",
        domain,
        len(manifest),
        len(videos_per_pid),
        len(tracklets),
        num_videos,
        unlisted,
    )
    spanning = int((videos_per_pid > 1).sum())
    if spanning:
        log.warning(
            "%s: %d pseudo ids appear in more than one video (e.g. pid %d)",
            domain,
            spanning,
            int(videos_per_pid[videos_per_pid > 1].index[0]),
        )
