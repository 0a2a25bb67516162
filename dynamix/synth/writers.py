"""File names and list files of each on-disk layout (the contract the loaders read).

Names follow the real releases so the same loaders serve real and synthetic data:
Market-1501 ``0002_c1s1_000451_03.jpg`` (junk ``-1_...``), DukeMTMC-reID
``0005_c2_f0046985.jpg``, MSMT17 ``0000/0000_000_01_0303morning_0015_0.jpg`` with list
files, CUHK03-NP ``0001_c1_01.png`` and the single-camera ``images/v00017/t000123_f0004.jpg``
with ``pseudo_labels.txt``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

Ints = Iterable[int]  # columns of a plan table (numpy arrays or pandas Series)
Strs = Iterable[str]
MARKET_FOLDERS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}
MSMT_DAYTIMES = (
    "0113morning",
    "0113noon",
    "0113afternoon",
    "0114morning",
    "0114noon",
    "0302morning",
    "0302noon",
    "0303morning",
    "0303afternoon",
)


def _pid(pid: int) -> str:
    return "-1" if pid < 0 else f"{pid:04d}"


def market_paths(split: Strs, pid: Ints, cam: Ints, seq: Ints, frame: Ints, box: Ints) -> list[str]:
    """``<folder>/PPPP_cCsS_FFFFFF_BB.jpg``; ``cam`` is 0-based."""
    return [
        f"{MARKET_FOLDERS[s]}/{_pid(p)}_c{c + 1}s{q}_{f:06d}_{b:02d}.jpg"
        for s, p, c, q, f, b in zip(split, pid, cam, seq, frame, box, strict=True)
    ]


def duke_paths(split: Strs, pid: Ints, cam: Ints, frame: Ints) -> list[str]:
    """``<folder>/PPPP_cC_fFFFFFFF.jpg``; ``cam`` is 0-based."""
    return [
        f"{MARKET_FOLDERS[s]}/{_pid(p)}_c{c + 1}_f{f:07d}.jpg"
        for s, p, c, f in zip(split, pid, cam, frame, strict=True)
    ]


def msmt_names(pid: Ints, index: Ints, cam: Ints, daytime: Ints, frame: Ints) -> list[str]:
    """``PPPP/PPPP_III_CC_<date><time>_FFFF_0.jpg`` relative to ``train/`` or ``test/``."""
    return [
        f"{p:04d}/{p:04d}_{i:03d}_{c + 1:02d}_{MSMT_DAYTIMES[t]}_{f % 10000:04d}_0.jpg"
        for p, i, c, t, f in zip(pid, index, cam, daytime, frame, strict=True)
    ]


def cuhk_paths(variant: Strs, split: Strs, pid: Ints, view: Ints, index: Ints) -> list[str]:
    """``<variant>/<folder>/PPPP_cV_NN.png``; ``view`` is 0-based, ``index`` 1-based."""
    return [
        f"{va}/{MARKET_FOLDERS[s]}/{p:04d}_c{v + 1}_{i:02d}.png"
        for va, s, p, v, i in zip(variant, split, pid, view, index, strict=True)
    ]


def single_camera_paths(video: Ints, tracklet: Ints, frame: Ints) -> list[str]:
    return [f"images/v{v:05d}/t{t:06d}_f{f:04d}.jpg" for v, t, f in zip(video, tracklet, frame, strict=True)]


def list_lines(paths: Sequence[str], pids: Iterable[int]) -> list[str]:
    return [f"{p} {int(q)}" for p, q in zip(paths, np.asarray(pids).tolist(), strict=True)]


def write_lines(path: Path, lines: Iterable[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        for line in lines:
            fh.write(line + "\n")
