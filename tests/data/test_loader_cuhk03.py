"""CUHK03-NP loader: labeled vs detected, a root holding the folders, the .mat refusal."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dynamix.data.cuhk03 import load_cuhk03_np
from dynamix.data.manifest import read_manifest, write_manifest
from dynamix.errors import DatasetLayoutError, DynamixError


def test_labeled_counts_and_view_to_camid(cuhk_root: Path) -> None:
    df = load_cuhk03_np(cuhk_root)
    assert df.attrs["cuhk03_variant"] == "labeled"
    assert set(df["domain"]) == {"cuhk03"}
    assert df["split"].value_counts().to_dict() == {"train": 3, "gallery": 2, "query": 1}
    train = df[df["split"] == "train"]
    assert train["pid"].tolist() == [1, 1, 3]
    assert train["camid"].tolist() == [0, 1, 0]  # views c1, c2, c1
    assert train["path"].iloc[0] == str(cuhk_root / "labeled/bounding_box_train/0001_c1_1.png")


def test_detected_variant(cuhk_root: Path) -> None:
    df = load_cuhk03_np(cuhk_root, domain="cuhk03-detected", variant="detected")
    assert df.attrs["cuhk03_variant"] == "detected"
    assert set(df["domain"]) == {"cuhk03-detected"}
    assert (df["split"] == "train").sum() == 2
    assert df["path"].str.contains("/detected/").all()


def test_root_holding_the_split_folders(cuhk_root: Path) -> None:
    df = load_cuhk03_np(cuhk_root / "detected", variant="detected")
    assert len(df) == 5


def test_unknown_variant(cuhk_root: Path) -> None:
    with pytest.raises(DynamixError, match="unknown variant 'both'"):
        load_cuhk03_np(cuhk_root, variant="both")


def test_missing_variant_folder(cuhk_root: Path) -> None:
    shutil.rmtree(cuhk_root / "labeled")
    with pytest.raises(DatasetLayoutError) as err:
        load_cuhk03_np(cuhk_root)
    assert str(err.value).startswith(f"{cuhk_root}: no labeled/ folder (only detected/); expected")


def test_original_mat_release_is_refused(tmp_path: Path, make_file) -> None:
    mat = make_file(tmp_path / "cuhk03" / "cuhk03_release" / "cuhk-03.mat")
    with pytest.raises(DatasetLayoutError) as err:
        load_cuhk03_np(tmp_path / "cuhk03")
    assert str(err.value).startswith(f"{mat}: the original .mat release is not supported")


def test_view_out_of_range_and_empty_query(cuhk_root: Path, make_file) -> None:
    bad = make_file(cuhk_root / "labeled" / "bounding_box_test" / "0702_c3_1.png")
    with pytest.raises(DatasetLayoutError) as err:
        load_cuhk03_np(cuhk_root)
    assert str(err.value).startswith(f"{bad}: camera c3 out of range c1..c2")
    bad.unlink()
    query = cuhk_root / "labeled" / "query"
    (query / "0700_c1_1.png").unlink()
    with pytest.raises(DatasetLayoutError) as err:
        load_cuhk03_np(cuhk_root)
    assert str(err.value) == (
        f"{query}: no images found; expected CUHK03-NP files like 0001_c1_1.png"
    )


def test_variant_survives_the_parquet_round_trip(cuhk_root: Path, tmp_path: Path) -> None:
    out = write_manifest(load_cuhk03_np(cuhk_root, variant="detected"), tmp_path / "c.parquet")
    assert read_manifest(out).attrs["cuhk03_variant"] == "detected"
