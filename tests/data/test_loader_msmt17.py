"""MSMT17 loader: V1/V2 detection, val merging, pids as listed, camera field, list-file errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dynamix.data.msmt17 import load_msmt17
from dynamix.errors import DatasetLayoutError, DynamixError


@pytest.mark.parametrize(("version", "train_dir"), [("v1", "train"), ("v2", "mask_train_v2")])
def test_versions_detected_from_folders(make_msmt, version: str, train_dir: str) -> None:
    root = make_msmt(version)
    df = load_msmt17(root)
    assert df["split"].value_counts().to_dict() == {"train": 4, "gallery": 2, "query": 1}
    assert set(df["domain"]) == {"msmt17"}
    first = df.iloc[0]
    assert first["path"] == str(root / train_dir / "0000/0000_000_01_0303morning_0015_0.jpg")


def test_camid_from_third_field_and_pids_as_listed(make_msmt) -> None:
    df = load_msmt17(make_msmt())
    train = df[df["split"] == "train"]
    assert train["camid"].tolist() == [0, 1, 14, 2]  # cameras 01, 02, 15, 03
    # listed pids 0, 0, 1, 2 stay as listed: pid 0 is a real MSMT17 person
    assert train["pid"].tolist() == [0, 0, 1, 2]
    query = df[df["split"] == "query"]
    assert query["pid"].tolist() == [0] and query["camid"].tolist() == [3]


def test_merge_val_off_drops_val_rows(make_msmt) -> None:
    root = make_msmt()
    (root / "list_val.txt").unlink()  # not even read when val is not merged
    df = load_msmt17(root, merge_val=False)
    assert df["split"].value_counts().to_dict() == {"train": 3, "gallery": 2, "query": 1}
    assert not df["path"].str.contains("0002_000_03").any()


def test_merge_val_on_needs_list_val(make_msmt) -> None:
    root = make_msmt()
    (root / "list_val.txt").unlink()
    with pytest.raises(DatasetLayoutError) as err:
        load_msmt17(root)
    assert str(err.value).startswith(f"{root / 'list_val.txt'}: file not found; expected")


def test_version_argument_overrides_detection(make_msmt) -> None:
    root = make_msmt("v1")
    shutil.copytree(root / "train", root / "mask_train_v2")
    shutil.copytree(root / "test", root / "mask_test_v2")
    with pytest.raises(DatasetLayoutError, match="holds both V1 and V2"):
        load_msmt17(root)
    df = load_msmt17(root, version="v2")
    assert df["path"].str.contains("/mask_train_v2/|/mask_test_v2/").all()
    assert len(load_msmt17(root, version="1")) == 7
    with pytest.raises(DynamixError, match="unknown version 'v3'"):
        load_msmt17(root, version="v3")


def test_no_image_folders(tmp_path: Path) -> None:
    (tmp_path / "msmt").mkdir()
    with pytest.raises(DatasetLayoutError) as err:
        load_msmt17(tmp_path / "msmt")
    assert str(err.value).startswith(f"{tmp_path / 'msmt'}: no MSMT17 image folders found")


def test_missing_test_folder(make_msmt) -> None:
    root = make_msmt()
    shutil.rmtree(root / "test")
    with pytest.raises(DatasetLayoutError) as err:
        load_msmt17(root)
    assert (
        str(err.value) == f"{root / 'test'}: folder not found; expected the MSMT17 V1 test/ folder"
    )


def test_missing_root(tmp_path: Path) -> None:
    with pytest.raises(DatasetLayoutError, match="folder not found; expected an MSMT17 root"):
        load_msmt17(tmp_path / "absent")


@pytest.mark.parametrize(
    "line",
    [
        "0000/0000_000_01_0303morning_0015_0.jpg",  # no pid
        "0000/0000_000_01_0303morning_0015_0.jpg x",  # pid not a number
        "0000/0000_000_01_0303morning_0015_0.jpg -1",  # negative pid
        "0000/0000_000_01_0303morning_0015_0.jpg 0 extra",
        "0000/0000_000_01_0303morning_0015_0.jpg 99999999999999999999",  # overflows int64
    ],
)
def test_malformed_line_names_file_and_line(make_msmt, make_list, line: str) -> None:
    root = make_msmt()
    make_list(root / "list_query.txt", ["", "0000/0000_000_04_0304morning_0001_0.jpg 0", line])
    with pytest.raises(DatasetLayoutError) as err:
        load_msmt17(root)
    assert str(err.value).startswith(f"{root / 'list_query.txt'}:3: malformed line {line!r}")


def test_blank_lines_are_tolerated(make_msmt, make_list) -> None:
    root = make_msmt()
    make_list(root / "list_query.txt", ["", "0000/0000_000_04_0304morning_0001_0.jpg 0", "  "])
    assert (load_msmt17(root)["split"] == "query").sum() == 1


def test_missing_listed_file(make_msmt) -> None:
    root = make_msmt()
    (root / "test" / "0001/0001_000_04_0304noon_0003_0.jpg").unlink()
    with pytest.raises(DatasetLayoutError) as err:
        load_msmt17(root)
    missing = root / "test" / "0001/0001_000_04_0304noon_0003_0.jpg"
    assert str(err.value).startswith(
        f"{root / 'list_gallery.txt'}:2: listed file {missing} does not exist"
    )


def test_camera_out_of_range_and_unparsable(make_msmt, make_list, make_file) -> None:
    root = make_msmt()
    make_file(root / "test" / "0000/0000_000_16_x_0001_0.jpg")
    make_list(root / "list_query.txt", ["0000/0000_000_16_x_0001_0.jpg 0"])
    with pytest.raises(DatasetLayoutError) as err:
        load_msmt17(root)
    assert str(err.value).startswith(f"{root / 'list_query.txt'}:1: camera 16 of ")
    make_file(root / "test" / "0000/query0001.jpg")
    make_list(root / "list_query.txt", ["0000/query0001.jpg 0"])
    with pytest.raises(DatasetLayoutError, match=r"list_query\.txt:1: no camera field"):
        load_msmt17(root)


def test_empty_list_and_duplicate_entry(make_msmt, make_list) -> None:
    root = make_msmt()
    make_list(root / "list_gallery.txt", [])
    with pytest.raises(DatasetLayoutError) as err:
        load_msmt17(root)
    assert str(err.value).startswith(f"{root / 'list_gallery.txt'}: no entries; expected")
    entry = "0000/0000_001_05_0304morning_0002_0.jpg 0"
    make_list(root / "list_gallery.txt", [entry, entry])
    with pytest.raises(DatasetLayoutError, match=r"list_gallery.txt:2: .* listed again \(first at"):
        load_msmt17(root)
