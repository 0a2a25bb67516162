"""CUHK03 under the new protocol (767 train / 700 test ids), from its folder release.

The CUHK03-NP release (Zhong et al., CVPR 2017) lays each box variant out like Market-1501::

    root/labeled/{bounding_box_train,bounding_box_test,query}/0001_c1_1.png
    root/detected/{...}

Names are ``<pid>_c<view>_<index>.png`` with view 1 or 2; the two views of a pair are the
two cameras, so ``camid = view - 1``. Only ``*.png`` is read, as the CUHK03-NP loaders
(M3L's ``cuhknp.py``) glob it; other image files get one warning with their count. A root
that directly holds the three folders (one variant copied out) is accepted too, and so is
a folder above the release (``data/`` holding ``cuhk03-np/``): the one release found
below is read.

The variant is checked against the folder read: ``variant=detected`` pointed at a folder
named ``labeled`` (or the reverse) is an error, not a silent swap of the protocol.

Labeled (hand-drawn) and detected (DPM) boxes give different numbers, so every result must
say which was used. The loader keeps ``domain`` as given (name it e.g. ``cuhk03-labeled``
in ``params.yaml`` when both are used), logs the variant, and records it in the
DataFrame's ``attrs["cuhk03_variant"]``; when the root holds the three folders directly
and its name says neither variant, the caller's ``variant`` is trusted.

Not supported: the original release (``cuhk-03.mat`` with the classic 20 splits or the
new-protocol ``.mat`` split files). Convert it to CUHK03-NP folders first.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pandas as pd

from dynamix.data.layout import find_release_root, layout_error, require_dir
from dynamix.data.market1501 import SPLIT_FOLDERS, FolderFormat, is_folder_release, load_folder_dataset
from dynamix.errors import DynamixError

log = logging.getLogger(__name__)

VARIANTS = ("labeled", "detected")
CUHK03_NP = FolderFormat("CUHK03-NP", "0001_c1_1.png", num_cameras=2, extensions=(".png",))
MAT_FILE = "cuhk-03.mat"


def load_cuhk03_np(
    root: str | os.PathLike[str], domain: str = "cuhk03", variant: str = "labeled", combine_all: bool = False
) -> pd.DataFrame:
    """Manifest of the CUHK03-NP ``variant`` (``labeled`` or ``detected``) under ``root``."""
    base = find_variant_root(find_release(root, variant), variant)
    manifest = load_folder_dataset(base, CUHK03_NP, domain, combine_all)
    manifest.attrs["cuhk03_variant"] = variant
    log.info("%s: CUHK03-NP %s boxes from %s", domain, variant, base)
    return manifest


def is_release(path: Path) -> bool:
    """A CUHK03-NP release (``labeled/`` or ``detected/`` inside) or one variant's folders."""
    return any((path / v).is_dir() for v in VARIANTS) or is_folder_release(path)


def find_release(root: str | os.PathLike[str], variant: str) -> Path:
    """``root``, or the one CUHK03-NP release folder below it (``data/`` + ``cuhk03-np/``)."""
    if variant not in VARIANTS:
        raise DynamixError(f"cuhk03-np: unknown variant {variant!r}; expected one of {VARIANTS}")
    folders = "/, ".join(SPLIT_FOLDERS.values()) + "/"
    expected = f"CUHK03-NP folders {variant}/{{{folders}}} (or those folders directly)"
    return find_release_root(root, "CUHK03-NP", is_release, f"a CUHK03-NP root holding {expected}", r"cuhk-?03")


def find_variant_root(root: Path, variant: str) -> Path:
    """The folder holding ``bounding_box_train/`` etc. for ``variant``: ``root/variant`` or root."""
    folders = "/, ".join(SPLIT_FOLDERS.values()) + "/"
    expected = f"CUHK03-NP folders {variant}/{{{folders}}} (or those folders directly)"
    require_dir(root, f"a CUHK03-NP root holding {expected}")
    if (root / variant).is_dir():
        return root / variant
    if any((root / f).is_dir() for f in SPLIT_FOLDERS.values()):
        named = [v for v in VARIANTS if v in root.name.lower()]
        if named and variant not in named:
            raise layout_error(
                root,
                f"holds the {named[0]} boxes but variant={variant}",
                f"variant={named[0]}, or the {variant}/ folder for {variant} boxes",
            )
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
