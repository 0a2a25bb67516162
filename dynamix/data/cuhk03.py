"""CUHK03 under the new protocol (767 train / 700 test ids), from its folder release.

The CUHK03-NP release (Zhong et al., CVPR 2017) lays each box variant out like Market-1501::

    root/labeled/{bounding_box_train,bounding_box_test,query}/0001_c1_1.png
    root/detected/{...}

Names are ``<pid>_c<view>_<index>.png`` (or ``.jpg``) with view 1 or 2; the two views of a
pair are the two cameras, so ``camid = view - 1``. A root that directly holds the three
folders (one variant copied out) is accepted too.

Labeled (hand-drawn) and detected (DPM) boxes give different numbers, so every result must
say which was used. The loader keeps ``domain`` as given (name it e.g. ``cuhk03-labeled``
in ``params.yaml`` when both are used), logs the variant, and records it in the
DataFrame's ``attrs["cuhk03_variant"]``; when the root holds the three folders directly
the folder cannot tell, and the caller's ``variant`` is trusted.

Not supported: the original release (``cuhk-03.mat`` with the classic 20 splits or the
new-protocol ``.mat`` split files). Convert it to CUHK03-NP folders first.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pandas as pd

from dynamix.data.layout import layout_error, require_dir
from dynamix.data.market1501 import SPLIT_FOLDERS, FolderFormat, load_folder_dataset
from dynamix.errors import DynamixError

log = logging.getLogger(__name__)

VARIANTS = ("labeled", "detected")
CUHK03_NP = FolderFormat("CUHK03-NP", "0001_c1_1.png", num_cameras=2)
MAT_FILE = "cuhk-03.mat"


def load_cuhk03_np(
    root: str | os.PathLike[str], domain: str = "cuhk03", variant: str = "labeled"
) -> pd.DataFrame:
    """Manifest of the CUHK03-NP ``variant`` (``labeled`` or ``detected``) under ``root``."""
    if variant not in VARIANTS:
        raise DynamixError(f"cuhk03-np: unknown variant {variant!r}; expected one of {VARIANTS}")
    base = find_variant_root(Path(root), variant)
    manifest = load_folder_dataset(base, CUHK03_NP, domain)
    manifest.attrs["cuhk03_variant"] = variant
    log.info("%s: CUHK03-NP %s boxes from %s", domain, variant, base)
    return manifest


def find_variant_root(root: Path, variant: str) -> Path:
    """The folder holding ``bounding_box_train/`` etc. for ``variant``: ``root/variant`` or root."""
    folders = "/, ".join(SPLIT_FOLDERS.values()) + "/"
    expected = f"CUHK03-NP folders {variant}/{{{folders}}} (or those folders directly)"
    require_dir(root, f"a CUHK03-NP root holding {expected}")
    if (root / variant).is_dir():
        return root / variant
    if any((root / f).is_dir() for f in SPLIT_FOLDERS.values()):
        log.info(
            "%s: no %s/ subfolder; reading the split folders at the root as %s",
            root,
            variant,
            variant,
        )
        return root
    mats = [p for p in (root / MAT_FILE, root / "cuhk03_release" / MAT_FILE) if p.is_file()]
    if mats:
        raise layout_error(
            mats[0],
            "the original .mat release is not supported",
            f"the CUHK03-NP folder release: {expected}",
        )
    other = next((v for v in VARIANTS if v != variant and (root / v).is_dir()), None)
    problem = f"no {variant}/ folder" + (f" (only {other}/)" if other else "")
    raise layout_error(root, problem, expected)
