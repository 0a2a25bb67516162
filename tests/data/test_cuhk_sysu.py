"""CUHK-SYSU crops read as torchreid / fast-reid read them, and the gate's per-format camera rule.

The miniature has the release's exact names (``cropped_images/p<pid>_s<scene>_<n>.jpg``)
plus the debris real copies carry; the peers take ``*.jpg`` only, pid from ``p<pid>``,
camera 0, train only.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dynamix.checks import derive_columns
from dynamix.config import DatasetSpec, load_params
from dynamix.data.cuhk_sysu import load_cuhk_sysu
from dynamix.data.manifest import MULTI_CAMERA
from dynamix.data.registry import load_dataset
from dynamix.errors import DatasetLayoutError
from dynamix.prepare import release_root

CROPS = ["p11422_s16929_1.jpg", "p11422_s16930_2.jpg", "p5_s1_1.jpg", "p5_s2_3.jpg", "p7_s3_1.jpg"]
REPO = Path(__file__).resolve().parents[2]


def write_crop(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (16, 40), (40, 90, 200)).save(path, format="JPEG")  # within the gate's size bounds
    return path


@pytest.fixture
def sysu_root(tmp_path: Path) -> Path:
    root = tmp_path / "cuhksysu"
    for name in CROPS:
        write_crop(root / "cropped_images" / name)
    crops = root / "cropped_images"
    (crops / "Thumbs.db").write_bytes(b"junk")
    (crops / "._p1_s1_1.jpg").write_bytes(b"")  # macOS resource fork: skipped
    write_crop(crops / "p8_s1_1.JPG")  # not *.jpg for the peers: left out, counted
    Image.new("RGB", (16, 40)).save(crops / "p9_s1_1.png")
    return root


def test_rows_as_the_peers_read_them(sysu_root: Path, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="dynamix.data.cuhk_sysu"):
        df = load_dataset("cuhk-sysu", sysu_root)
    assert len(df) == len(CROPS)
    assert df["path"].tolist() == [str(sysu_root / "cropped_images" / n) for n in sorted(CROPS)]
    assert df["pid"].tolist() == [11422, 11422, 5, 5, 7]  # pids as written, clean labels
    assert set(df["camid"]) == {0}  # no camera in the release: one dummy camera
    assert set(df["split"]) == {"train"}
    assert set(df["source_kind"]) == {MULTI_CAMERA}  # clean labels: never relabeled
    assert set(df["domain"]) == {"cuhk-sysu"}
    assert df["video"].isna().all() and df["tracklet"].isna().all()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [  # ONE warning, the loaders' shared one: count and examples
        f"cuhk-sysu (CUHK-SYSU) at {sysu_root}: 2 image files not *.jpg left out, as the reference loaders do "
        "(e.g. cropped_images/p8_s1_1.JPG, cropped_images/p9_s1_1.png); delete converted copies or convert them all"
    ]


def test_bad_name_and_missing_folder(sysu_root: Path, tmp_path: Path) -> None:
    bad = write_crop(sysu_root / "cropped_images" / "s16929_p11422_1.jpg")
    with pytest.raises(DatasetLayoutError) as err:
        load_cuhk_sysu(sysu_root, domain="x")
    assert str(err.value) == (
        f"{bad}: name does not start with p<pid>_s<scene>; expected CUHK-SYSU crops like "
        "cropped_images/p11422_s16929_1.jpg"
    )
    (tmp_path / "half").mkdir()
    with pytest.raises(DatasetLayoutError) as err:
        load_cuhk_sysu(tmp_path / "half", domain="x")
    assert str(err.value).startswith(f"{tmp_path / 'half' / 'cropped_images'}: folder not found")
    assert "\n" not in str(err.value)


def test_no_jpg_crops(tmp_path: Path) -> None:
    (tmp_path / "s" / "cropped_images").mkdir(parents=True)
    Image.new("RGB", (16, 40)).save(tmp_path / "s" / "cropped_images" / "p1_s1_1.png")
    with pytest.raises(
        DatasetLayoutError, match=r"cropped_images: no \*\.jpg images found, only 1 others \(e\.g\. p1_s1"
    ):
        load_cuhk_sysu(tmp_path / "s", domain="x")


def test_root_above_the_release(sysu_root: Path, tmp_path: Path, caplog) -> None:
    """torchreid's ``data/`` holding ``cuhksysu/cropped_images``, beside other releases."""
    data = tmp_path  # holds cuhksysu/ (the fixture) and, below, a Market release
    write_crop(data / "market1501" / "Market-1501-v15.09.15" / "bounding_box_train" / "0002_c1s1_000451_03.jpg")
    with caplog.at_level(logging.INFO, logger="dynamix.data.layout"):
        df = load_dataset("cuhk-sysu", data, domain="sysu")
    assert df["path"].tolist() == [str(sysu_root / "cropped_images" / n) for n in sorted(CROPS)]
    assert f"reading the CUHK-SYSU release found at {sysu_root}" in caplog.text
    assert release_root(DatasetSpec("sysu", "cuhk-sysu", str(data))) == sysu_root  # prepare fingerprints it alone

    write_crop(data / "sysu-copy" / "cropped_images" / "p1_s1_1.jpg")  # two releases: named, never guessed
    with pytest.raises(DatasetLayoutError) as err:
        load_cuhk_sysu(data, domain="x")
    assert (
        str(err.value)
        == f"{data}: holds 2 CUHK-SYSU releases (cuhksysu/, sysu-copy/); expected the root of one of them"
    )


def test_gate_camera_rule_is_per_format(sysu_root: Path) -> None:
    """One camera per identity passes for cuhk-sysu, and fails the same rows judged as Market."""
    from flows.validation import _Runner, manifest_expectations

    params = load_params(REPO / "params.yaml")
    assert params.validation.min_train_cameras_by_format["cuhk-sysu"] == 1
    df = load_cuhk_sysu(sysu_root, domain="sysu")
    runner = _Runner()
    outcome = {}
    for fmt in ("cuhk-sysu", "market1501"):
        rows = derive_columns(df, fmt=fmt)
        assert rows["decodes"].all()
        result = runner.run(f"sysu.{fmt}", manifest_expectations("sysu", fmt, MULTI_CAMERA, params), rows)
        outcome[fmt] = sorted(r.expectation_config.kwargs.get("column") for r in result.results if not r.success)
    assert outcome == {"cuhk-sysu": [], "market1501": ["num_train_cameras_of_pid"]}
    assert np.array_equal(rows["num_train_cameras_of_pid"].to_numpy(), np.ones(len(df)))
