"""Market-1501 / DukeMTMC-reID loader: exact counts on hand-made folders and every error."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dynamix.data.manifest import COLUMNS, MULTI_CAMERA
from dynamix.data.market1501 import load_dukemtmc, load_market1501
from dynamix.errors import DatasetLayoutError


def rows(df, split):
    return df[df["split"] == split].sort_values("path").reset_index(drop=True)


def test_market_counts_junk_dropped_distractor_kept(market_root: Path) -> None:
    df = load_market1501(market_root)
    assert list(df.columns) == list(COLUMNS)
    assert df["split"].value_counts().to_dict() == {"train": 4, "query": 2, "gallery": 3}
    assert set(df["domain"]) == {"market1501"}
    assert set(df["source_kind"]) == {MULTI_CAMERA}
    assert df["video"].isna().all() and df["tracklet"].isna().all()
    assert not df["path"].str.contains("/-1_").any()  # junk dropped
    assert not df["path"].str.endswith("Thumbs.db").any()
    gallery = rows(df, "gallery")
    assert sorted(gallery["pid"]) == [0, 2, 7]
    assert (df.loc[df["pid"] == 0, "split"] == "gallery").all()


def test_market_camids_are_zero_based_and_paths_join_root(market_root: Path) -> None:
    train = rows(load_market1501(market_root, domain="market-syn"), "train")
    assert train["camid"].tolist() == [0, 1, 2, 5]  # c1, c2, c3, c6
    assert train["pid"].tolist() == [2, 2, 7, 7]
    expected = str(market_root / "bounding_box_train" / "0002_c1s1_000451_03.jpg")
    assert train["path"].iloc[0] == expected
    assert Path(train["path"].iloc[0]).stat().st_size > 0  # the real JPEG fixture


def test_market_row_order_is_deterministic(market_root: Path) -> None:
    a, b = load_market1501(market_root), load_market1501(market_root)
    assert a.equals(b)
    train = a[a["split"] == "train"]["path"].tolist()
    assert train == sorted(train)


def test_duke_naming_and_eight_cameras(duke_root: Path) -> None:
    df = load_dukemtmc(duke_root)
    assert set(df["domain"]) == {"dukemtmc"}
    assert df["split"].value_counts().to_dict() == {"train": 3, "query": 1, "gallery": 2}
    train = rows(df, "train")
    assert train["pid"].tolist() == [5, 5, 9]
    assert train["camid"].tolist() == [1, 7, 0]  # c2, c8, c1


def test_missing_root(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(DatasetLayoutError) as err:
        load_market1501(missing)
    assert str(err.value).startswith(f"{missing}: folder not found; expected a Market-1501 root")


def test_missing_split_folder(market_root: Path) -> None:
    shutil.rmtree(market_root / "query")
    with pytest.raises(DatasetLayoutError) as err:
        load_market1501(market_root)
    assert str(err.value) == (
        f"{market_root / 'query'}: folder not found; expected the Market-1501 query/ folder"
    )


def test_empty_split(market_root: Path) -> None:
    for f in (market_root / "query").iterdir():
        f.unlink()
    (market_root / "query" / "Thumbs.db").write_bytes(b"")  # a non-image does not count
    with pytest.raises(DatasetLayoutError) as err:
        load_market1501(market_root)
    assert str(err.value) == (
        f"{market_root / 'query'}: no images found; "
        "expected Market-1501 files like 0002_c1s1_000451_03.jpg"
    )
    assert "\n" not in str(err.value)


def test_split_of_only_junk_is_empty(market_root: Path, make_file) -> None:
    for f in (market_root / "query").iterdir():
        f.unlink()
    make_file(market_root / "query" / "-1_c1s1_000001_00.jpg")
    with pytest.raises(DatasetLayoutError, match="query: only junk images"):
        load_market1501(market_root)


@pytest.mark.parametrize("name", ["foo.jpg", "abc_c1s1_000001_01.jpg", "0002c1s1.jpg"])
def test_image_with_bad_name(market_root: Path, make_file, name: str) -> None:
    bad = make_file(market_root / "bounding_box_test" / name)
    with pytest.raises(DatasetLayoutError) as err:
        load_market1501(market_root)
    assert str(err.value).startswith(f"{bad}: name does not start with <pid>_c<camera>")


@pytest.mark.parametrize(
    ("loader", "folder", "name", "limit"),
    [
        (load_market1501, "market", "0002_c7s1_000001_01.jpg", "c1..c6"),
        (load_market1501, "market", "0002_c0s1_000001_01.jpg", "c1..c6"),
        (load_dukemtmc, "duke", "0005_c9_f0000001.jpg", "c1..c8"),
    ],
)
def test_camera_out_of_range(request, make_file, loader, folder, name, limit) -> None:
    root = request.getfixturevalue(f"{folder}_root")
    bad = make_file(root / "bounding_box_train" / name)
    with pytest.raises(DatasetLayoutError) as err:
        loader(root)
    assert str(err.value).startswith(f"{bad}: camera ")
    assert f"out of range {limit}" in str(err.value)


@pytest.mark.parametrize("folder", ["query", "bounding_box_train"])
def test_distractor_outside_gallery(market_root: Path, make_file, folder: str) -> None:
    bad = make_file(market_root / folder / "0000_c1s1_000009_01.jpg")
    with pytest.raises(DatasetLayoutError) as err:
        load_market1501(market_root)
    assert str(err.value) == (
        f"{bad}: pid 0 (distractor) in {folder}/; expected distractors in bounding_box_test/ only"
    )


def test_negative_pid_other_than_junk(market_root: Path, make_file) -> None:
    bad = make_file(market_root / "bounding_box_test" / "-2_c1s1_000001_01.jpg")
    with pytest.raises(DatasetLayoutError, match="pid -2 is negative"):
        load_market1501(market_root)
    assert bad.exists()
