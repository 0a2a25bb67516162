"""Single-camera pseudo-labelled loader: video/tracklet/camid from paths, and its errors."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from dynamix.data.manifest import SINGLE_CAMERA
from dynamix.data.single_camera import load_single_camera
from dynamix.errors import DatasetLayoutError


def test_rows_from_the_list(single_camera_root: Path) -> None:
    df = load_single_camera(single_camera_root, domain="lupnl-syn")
    assert len(df) == 5  # the unlisted image is not in the manifest
    assert set(df["split"]) == {"train"}
    assert set(df["source_kind"]) == {SINGLE_CAMERA}
    assert set(df["domain"]) == {"lupnl-syn"}
    assert df["path"].iloc[0] == str(single_camera_root / "images/v00017/t000123_f0004.jpg")
    assert df["video"].tolist() == ["v00017", "v00017", "v00017", "v00003", "v00200"]
    assert df["tracklet"].tolist() == ["t000123", "t000123", "t000124", "t000001", "t000001"]
    # each video is its own camera, numbered in sorted order of video names
    assert df["camid"].tolist() == [1, 1, 1, 0, 2]
    assert df["pid"].tolist() == [5012, 5012, 5013, 0, 77]  # pseudo pid 0 is allowed


def test_pid_spanning_videos_is_logged(single_camera_root: Path, make_list, caplog) -> None:
    lines = (single_camera_root / "pseudo_labels.txt").read_text().splitlines()
    lines[4] = "images/v00200/t000001_f0009.jpg 5012"
    make_list(single_camera_root / "pseudo_labels.txt", lines)
    with caplog.at_level(logging.WARNING, logger="dynamix.data.single_camera"):
        load_single_camera(single_camera_root, domain="x")
    assert "1 pseudo ids appear in more than one video (e.g. pid 5012)" in caplog.text


def test_missing_list(single_camera_root: Path) -> None:
    listing = single_camera_root / "pseudo_labels.txt"
    listing.unlink()
    with pytest.raises(DatasetLayoutError) as err:
        load_single_camera(single_camera_root, domain="x")
    assert str(err.value).startswith(f"{listing}: file not found; expected lines like")


def test_missing_images_folder_and_root(tmp_path: Path, make_list) -> None:
    with pytest.raises(DatasetLayoutError, match=f"{tmp_path / 'none'}: folder not found"):
        load_single_camera(tmp_path / "none", domain="x")
    make_list(tmp_path / "src" / "pseudo_labels.txt", ["images/v1/t1_f1.jpg 1"])
    with pytest.raises(DatasetLayoutError) as err:
        load_single_camera(tmp_path / "src", domain="x")
    assert str(err.value).startswith(f"{tmp_path / 'src' / 'images'}: folder not found")


def test_malformed_line(single_camera_root: Path, make_list) -> None:
    listing = make_list(
        single_camera_root / "pseudo_labels.txt",
        ["images/v00017/t000123_f0004.jpg 5012", "images/v00017/t000123_f0005.jpg,5012"],
    )
    with pytest.raises(DatasetLayoutError) as err:
        load_single_camera(single_camera_root, domain="x")
    assert str(err.value).startswith(f"{listing}:2: malformed line")


def test_listed_file_missing(single_camera_root: Path, make_list) -> None:
    listing = make_list(
        single_camera_root / "pseudo_labels.txt",
        ["images/v00017/t000123_f0004.jpg 5012", "images/v00017/t000555_f0001.jpg 9"],
    )
    with pytest.raises(DatasetLayoutError) as err:
        load_single_camera(single_camera_root, domain="x")
    missing = single_camera_root / "images/v00017/t000555_f0001.jpg"
    assert str(err.value).startswith(f"{listing}:2: listed file {missing} does not exist")


@pytest.mark.parametrize(
    "rel",
    [
        "v00017/t000123_f0004.jpg",  # no images/ prefix
        "images/t000123_f0004.jpg",  # no video folder
        "images/v00017/t000123.jpg",  # no frame
        "images/v00017/extra/t000123_f0004.jpg",  # too deep
        "images/v00017/t000123_f0004.txt",  # not an image
    ],
)
def test_path_not_matching_pattern(single_camera_root: Path, make_list, make_file, rel) -> None:
    make_file(single_camera_root / rel)
    listing = make_list(single_camera_root / "pseudo_labels.txt", [f"{rel} 3"])
    with pytest.raises(DatasetLayoutError) as err:
        load_single_camera(single_camera_root, domain="x")
    assert str(err.value).startswith(f"{listing}:1: path {rel} does not match")


def test_empty_list(single_camera_root: Path, make_list) -> None:
    listing = make_list(single_camera_root / "pseudo_labels.txt", ["", ""])
    with pytest.raises(DatasetLayoutError) as err:
        load_single_camera(single_camera_root, domain="x")
    assert str(err.value).startswith(f"{listing}: no entries; expected")
