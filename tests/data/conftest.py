"""Tiny dataset folders with hand-chosen file names, so every count in the tests is known.

Loaders never decode images, so most files are empty; the Market fixture writes real
(tiny) JPEGs to prove the loader works on the genuine article too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
from PIL import Image


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def write_jpeg(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 8), (200, 30, 30)).save(path, format="JPEG")
    return path


def write_lines(path: Path, lines: Iterable[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


MARKET_FILES = {
    "bounding_box_train": [
        "0002_c1s1_000451_03.jpg",
        "0002_c2s1_000551_01.jpg",
        "0007_c3s1_000001_01.jpg",
        "0007_c6s2_000002_01.jpg",
    ],
    "query": ["0002_c1s1_001051_00.jpg", "0007_c4s1_000002_00.jpg"],
    "bounding_box_test": [
        "0002_c5s1_000001_01.jpg",
        "0007_c1s1_000003_01.jpg",
        "0000_c1s1_000004_01.jpg",  # distractor: kept
        "-1_c2s1_000005_01.jpg",  # junk: dropped
        "-1_c3s1_000006_01.jpg",  # junk: dropped
    ],
}

DUKE_FILES = {
    "bounding_box_train": ["0005_c2_f0046985.jpg", "0005_c8_f0047000.jpg", "0009_c1_f0000001.jpg"],
    "query": ["0005_c3_f0050000.jpg"],
    "bounding_box_test": ["0005_c7_f0060000.jpg", "0011_c4_f0070000.jpg"],
}


def build_folder_dataset(root: Path, files: dict[str, list[str]], writer=touch) -> Path:
    for folder, names in files.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for name in names:
            writer(root / folder / name)
    return root


@pytest.fixture
def market_root(tmp_path: Path) -> Path:
    root = build_folder_dataset(tmp_path / "market", MARKET_FILES, writer=write_jpeg)
    (root / "bounding_box_train" / "Thumbs.db").write_bytes(b"junk")
    (root / "query" / "._0002_c1s1_001051_00.jpg").write_bytes(b"")  # macOS resource fork
    (root / "readme.txt").write_text("Market-1501")
    return root


@pytest.fixture
def duke_root(tmp_path: Path) -> Path:
    return build_folder_dataset(tmp_path / "duke", DUKE_FILES)


# MSMT17: (relative path, pid) per list; the camera is the third "_" field.
MSMT_LISTS = {
    "train": [("0000/0000_000_01_0303morning_0015_0.jpg", 0),
              ("0000/0000_001_02_0303morning_0016_0.jpg", 0),
              ("0001/0001_000_15_0303noon_0001_0.jpg", 1)],
    "val": [("0002/0002_000_03_0303noon_0002_0.jpg", 2)],
    "query": [("0000/0000_000_04_0304morning_0001_0.jpg", 0)],
    "gallery": [("0000/0000_001_05_0304morning_0002_0.jpg", 0),
                ("0001/0001_000_04_0304noon_0003_0.jpg", 1)],
}


@pytest.fixture
def make_msmt(tmp_path: Path) -> Callable[..., Path]:
    def make(version: str = "v1", name: str = "msmt") -> Path:
        root = tmp_path / name
        train, test = ("train", "test") if version == "v1" else ("mask_train_v2", "mask_test_v2")
        for key, rows in MSMT_LISTS.items():
            folder = root / (train if key in ("train", "val") else test)
            for rel, _ in rows:
                touch(folder / rel)
            write_lines(root / f"list_{key}.txt", [f"{rel} {pid}" for rel, pid in rows])
        return root

    return make


CUHK_FILES = {
    "bounding_box_train": ["0001_c1_1.png", "0001_c2_1.png", "0003_c1_1.png"],
    "query": ["0700_c1_1.png"],
    "bounding_box_test": ["0700_c2_1.png", "0701_c2_2.png"],
}


@pytest.fixture
def cuhk_root(tmp_path: Path) -> Path:
    root = tmp_path / "cuhk03-np"
    build_folder_dataset(root / "labeled", CUHK_FILES)
    detected = {k: v[:-1] if k == "bounding_box_train" else v for k, v in CUHK_FILES.items()}
    build_folder_dataset(root / "detected", detected)
    return root


SINGLE_CAMERA_LINES = [
    "images/v00017/t000123_f0004.jpg 5012",
    "images/v00017/t000123_f0005.jpg 5012",
    "images/v00017/t000124_f0001.jpg 5013",
    "images/v00003/t000001_f0001.jpg 0",
    "images/v00200/t000001_f0009.jpg 77",
]


@pytest.fixture
def single_camera_root(tmp_path: Path) -> Path:
    root = tmp_path / "lupnl"
    for line in SINGLE_CAMERA_LINES:
        touch(root / line.split()[0])
    touch(root / "images" / "v00017" / "t000999_f0001.jpg")  # unlisted: ignored
    write_lines(root / "pseudo_labels.txt", [*SINGLE_CAMERA_LINES, ""])
    return root


@pytest.fixture
def make_file() -> Callable[[Path], Path]:
    """An empty file at ``path`` (parents created): what a loader sees of an image."""
    return touch


@pytest.fixture
def make_list() -> Callable[[Path, Iterable[str]], Path]:
    """A list file at ``path`` holding ``lines``, newline-terminated."""
    return write_lines
