"""CUHK-SYSU (person search), read in its crop form as torchreid and fast-reid read it.

Layout::

    root/cropped_images/p11422_s16929_1.jpg     p<pid>_s<scene>_<n>.jpg

The peers take every ``*.jpg`` of ``cropped_images/`` (lower-case extension, as their
``glob`` does on Linux), the pid from the ``p<pid>`` prefix, and one dummy camera for all
(torchreid: 34,574 images of 11,934 identities). So does this loader:

- every row is ``train`` (the crops have no query/gallery split of the re-ID protocols);
- ``camid`` is 0: a scene is a photo or a movie frame, not a camera, and the crops carry
  no camera at all. The gate's ``min_train_cameras`` therefore does not apply to this
  format (``validation.min_train_cameras_by_format``);
- ``source_kind`` is ``multi_camera``: the labels are clean, annotated identities, which
  training uses as given and the relabeling module never rewrites (reading the crops as
  ``single_camera`` would turn them into pseudo-labels).

Other image files (a ``.png`` or ``.JPG`` copy) are left out with the loaders' one warning
and a count (:func:`~dynamix.data.layout.warn_other_images`), never read twice; hidden
files (``._p1_s1_1.jpg``) and non-images are skipped; a ``.jpg`` whose name does not start
with ``p<pid>_s<scene>`` raises, naming it.

``root`` may be the folder holding ``cropped_images/`` or the one the peers take above it
(torchreid's ``data/`` holding ``cuhksysu/cropped_images``): the one release found is read,
and the log says which (:func:`~dynamix.data.layout.find_release_root`).
"""

from __future__ import annotations

import logging
import os
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
from dynamix.data.manifest import MULTI_CAMERA, make_manifest

log = logging.getLogger(__name__)

CROPS_DIR = "cropped_images"
EXAMPLE = "p11422_s16929_1.jpg"
NAME_PATTERN = r"^p(?P<pid>\d{1,18})_s(?P<scene>\d{1,18})"  # bounded: fits int64
EXTENSION = ".jpg"  # torchreid and fast-reid glob cropped_images/*.jpg
NAME_HINT = "sysu"  # a data/ holding several releases: the one whose path says so


def load_cuhk_sysu(root: str | os.PathLike[str], domain: str = "cuhk-sysu") -> pd.DataFrame:
    """Manifest (all ``train``, camera 0, clean labels) of the CUHK-SYSU crops under ``root``."""
    expected = f"CUHK-SYSU crops like {CROPS_DIR}/{EXAMPLE}"
    base = find_release(root)
    folder = require_dir(base / CROPS_DIR, expected)
    taken, others = scan_images(folder, (EXTENSION,))
    warn_other_images(f"{domain} (CUHK-SYSU)", base, [f"{CROPS_DIR}/{n}" for n in others], (EXTENSION,))
    names = np.array(taken, dtype=object)
    if not len(names):
        found = f", only {len(others)} others (e.g. {others[0]})" if others else ""
        raise layout_error(folder, f"no *{EXTENSION} images found{found}", expected)
    groups, ok = extract(names, NAME_PATTERN)
    bad = first_false(ok)
    if bad is not None:
        raise layout_error(folder / names[bad], "name does not start with p<pid>_s<scene>", expected)
    pid = to_int(groups["pid"])
    manifest = make_manifest(
        {
            "path": join_paths(folder, names),
            "pid": pid,
            "camid": np.zeros(len(names), dtype=np.int64),
            "domain": domain,
            "split": "train",
            "source_kind": MULTI_CAMERA,
        }
    )
    log.info(
        "%s (CUHK-SYSU crops at %s): train %d images, %d identities, %d scenes",
        domain,
        base,
        len(manifest),
        len(np.unique(pid)),
        len(np.unique(to_int(groups["scene"]))),
    )
    return manifest


def is_release(path: Path) -> bool:
    """A CUHK-SYSU crop release: a folder holding ``cropped_images/``."""
    return (path / CROPS_DIR).is_dir()


def find_release(root: str | os.PathLike[str]) -> Path:
    """``root``, or the one CUHK-SYSU release below it (torchreid: ``data/cuhksysu``)."""
    expected = f"a CUHK-SYSU root holding {CROPS_DIR}/"
    return find_release_root(root, "CUHK-SYSU", is_release, expected, NAME_HINT)
