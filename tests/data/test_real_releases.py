"""Real releases as users hold them: combine_all, roots above the release, the peers'
extensions, the CUHK03-NP variant check, and the published counts in the data gate."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import MARKET_FILES, build_folder_dataset, touch
from PIL import Image

from dynamix.checks import decode_mask, expected_release_counts, file_stats, release_key, synthetic_dataset
from dynamix.config import ConfigError, Params, ReleaseCounts, SplitCount, load_params
from dynamix.data.cuhk03 import load_cuhk03_np
from dynamix.data.market1501 import load_dukemtmc, load_market1501
from dynamix.data.msmt17 import load_msmt17
from dynamix.data.registry import load_dataset
from dynamix.errors import DatasetLayoutError
from dynamix.prepare import prepare_manifests, release_root

REPO = Path(__file__).resolve().parents[2]


def pids(df, split: str) -> set[int]:
    return set(df.loc[df["split"] == split, "pid"])


# ---- combine_all ---------------------------------------------------------------------------
def test_combine_all_market_offsets_test_pids_and_leaves_out_distractors(market_root: Path) -> None:
    plain = load_market1501(market_root)
    assert pids(plain, "train") == {2, 7} and pids(plain, "gallery") == {0, 2, 7}
    df = load_dataset("market1501", market_root, combine_all="true")  # textual, as --option gives it
    assert set(df["split"]) == {"train"}
    assert len(df) == 4 + 2 + 2  # train + query + gallery minus the distractor (junk never loaded)
    assert not df["path"].str.contains("/0000_").any()
    # test pids shifted past the largest train pid (7): 2 -> 10, 7 -> 15, query and gallery alike
    assert set(df["pid"]) == {2, 7, 10, 15}
    test_rows = ~df["path"].str.contains("bounding_box_train")
    assert set(df.loc[test_rows, "pid"]) == {10, 15}
    query_2 = df["path"].str.endswith("query/0002_c1s1_001051_00.jpg")
    assert df.loc[query_2, ["pid", "camid"]].values.tolist() == [[10, 0]]  # cameras kept


def test_combine_all_msmt17_keeps_renumbered_test_pids_apart(make_msmt) -> None:
    df = load_msmt17(make_msmt(), combine_all=True)
    assert set(df["split"]) == {"train"} and len(df) == 4 + 1 + 2  # train+val, query, gallery
    train_rows = df["path"].str.contains("/train/")
    assert set(df.loc[train_rows, "pid"]) == {0, 1, 2}
    # test pids 0 and 1 are other people than train pids 0 and 1: offset by 3
    assert set(df.loc[~train_rows, "pid"]) == {3, 4}
    assert df["pid"].nunique() == 5


def test_combine_all_on_cuhk03_and_duke(cuhk_root: Path, duke_root: Path) -> None:
    cuhk = load_cuhk03_np(cuhk_root, combine_all=True)
    assert len(cuhk) == 6 and set(cuhk["pid"]) == {1, 3, 704, 705}  # 700/701 + (3 + 1)
    duke = load_dukemtmc(duke_root, combine_all=True)
    assert len(duke) == 6 and set(duke["pid"]) == {5, 9, 15, 21}


def test_combine_all_is_refused_on_a_target(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("data:\n  seed: 0\n")
    target = "{name: market-syn, format: market1501, root: r, options: {combine_all: true}}"
    with pytest.raises(ConfigError) as err:
        load_params(path, [f"data.targets=[{target}]"])
    assert "'data.targets.0.options.combine_all' is set on target market-syn" in str(err.value)
    assert "\n" not in str(err.value)


# ---- roots as the peers take them ----------------------------------------------------------
def test_parent_folders_as_the_peers_take_them(tmp_path: Path, caplog) -> None:
    inner = build_folder_dataset(tmp_path / "data" / "Market-1501-v15.09.15", MARKET_FILES)
    direct = load_market1501(inner)
    with caplog.at_level(logging.INFO, logger="dynamix.data.layout"):
        above = load_market1501(tmp_path / "data")
    assert above.equals(direct)
    assert f"{tmp_path / 'data'}: reading the Market-1501 release found at {inner}" in caplog.text
    # torchreid: <root>/market1501/Market-1501-v15.09.15, two levels down
    torchreid = tmp_path / "tr"
    shutil.copytree(tmp_path / "data", torchreid / "market1501")
    assert len(load_market1501(torchreid)) == len(direct)


def test_release_picked_by_name_and_ambiguity_listed(tmp_path: Path, make_file) -> None:
    data = tmp_path / "data"
    build_folder_dataset(data / "Market-1501-v15.09.15", MARKET_FILES)
    build_folder_dataset(
        data / "DukeMTMC-reID",
        {
            "bounding_box_train": ["0005_c2_f0046985.jpg"],
            "query": ["0005_c3_f0050000.jpg"],
            "bounding_box_test": ["0005_c7_f0060000.jpg"],
        },
    )
    assert load_market1501(data)["path"].str.contains("Market-1501-v15.09.15/").all()
    assert load_dukemtmc(data)["path"].str.contains("DukeMTMC-reID/").all()
    build_folder_dataset(data / "market-copy", MARKET_FILES)
    with pytest.raises(DatasetLayoutError) as err:
        load_market1501(data)
    assert str(err.value) == (
        f"{data}: holds 2 Market-1501 releases (Market-1501-v15.09.15/, market-copy/); expected the root of one of them"
    )


def test_msmt17_and_cuhk03_below_their_parent(tmp_path: Path, make_msmt, cuhk_root: Path) -> None:
    root = make_msmt(name="msmt17/MSMT17_V1")
    assert len(load_msmt17(tmp_path / "msmt17")) == len(load_msmt17(root))
    data = tmp_path / "cuhk-parent"
    shutil.move(cuhk_root, data / "cuhk03-np")
    df = load_cuhk03_np(data, variant="detected")
    assert df["path"].str.contains("cuhk03-np/detected/").all()


def test_cuhk03_variant_is_checked_against_the_folder(cuhk_root: Path) -> None:
    labeled = cuhk_root / "labeled"
    with pytest.raises(DatasetLayoutError) as err:
        load_cuhk03_np(labeled, variant="detected")
    assert str(err.value) == (
        f"{labeled}: holds the labeled boxes but variant=detected; "
        "expected variant=labeled, or the detected/ folder for detected boxes"
    )
    assert len(load_cuhk03_np(labeled, variant="labeled")) == 6


def test_prepare_fingerprints_the_release_not_its_siblings(tmp_path: Path) -> None:
    data = tmp_path / "data"
    build_folder_dataset(data / "Market-1501-v15.09.15", MARKET_FILES)
    (data / "other").mkdir()
    spec = Params().data.targets[0].__class__("m", "market1501", str(data))
    assert release_root(spec) == data / "Market-1501-v15.09.15"


# ---- extensions as the peers glob them -----------------------------------------------------
def test_other_extensions_are_left_out_with_one_warning(market_root: Path, caplog) -> None:
    before = load_market1501(market_root)
    shutil.copy(market_root / "query" / "0002_c1s1_001051_00.jpg", market_root / "query" / "0002_c1s1_001051_00.png")
    shutil.copy(
        market_root / "bounding_box_train" / "0002_c1s1_000451_03.jpg",
        market_root / "bounding_box_train" / "0002_c1s1_000451_03.JPG",
    )
    with caplog.at_level(logging.WARNING):
        after = load_market1501(market_root)
    assert after.equals(before)  # never counted twice
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "2 image files not *.jpg left out" in warnings[0]
    assert "bounding_box_train/0002_c1s1_000451_03.JPG" in warnings[0]


def test_cuhk03_np_reads_png_only_and_msmt17_reports_strays(cuhk_root: Path, make_msmt, caplog) -> None:
    touch(cuhk_root / "labeled" / "query" / "0700_c1_1.jpg")
    with caplog.at_level(logging.WARNING):
        df = load_cuhk03_np(cuhk_root)
        root = make_msmt()
        touch(root / "train" / "0000" / "0000_000_01_0303morning_0015_0.png")
        load_msmt17(root)
    assert not df["path"].str.endswith(".jpg").any() and len(df) == 6
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "1 image files not *.png left out" in warnings[0] and "query/0700_c1_1.jpg" in warnings[0]
    assert "1 image files not *.jpg left out" in warnings[1]


def test_a_folder_of_other_extensions_only_says_so(market_root: Path) -> None:
    query = market_root / "query"
    for f in query.glob("*.jpg"):
        f.rename(f.with_suffix(".png"))
    with pytest.raises(DatasetLayoutError, match=r"query: no \*\.jpg images found, only 2 others \(e\.g\. "):
        load_market1501(market_root)


# ---- published counts ----------------------------------------------------------------------
def test_published_counts_follow_the_options() -> None:
    table = Params().validation.published_counts
    market = table["market1501"]
    assert expected_release_counts(market, {}) == {
        "train": {"images": 12936, "ids": 751},
        "query": {"images": 3368, "ids": 750},
        "gallery": {"images": 15913, "ids": 751},
    }
    assert expected_release_counts(market, {"combine_all": True}) == {"train": {"images": 29424, "ids": 1501}}
    msmt = table["msmt17"]
    assert expected_release_counts(msmt, {"merge_val": "false"})["train"] == {"images": 30248, "ids": None}
    assert expected_release_counts(msmt, {"combine_all": True}) == {"train": {"images": 126441, "ids": 4101}}
    duke = expected_release_counts(table["dukemtmc"], {"combine_all": True})
    assert duke == {"train": {"images": 36411, "ids": 1812}}
    assert release_key("cuhk03-np", {"variant": "detected"}) == "cuhk03-np/detected"
    assert release_key("cuhk03-np", {}) == "cuhk03-np/labeled"
    cuhk = expected_release_counts(table["cuhk03-np/labeled"], {"combine_all": True})
    assert cuhk == {"train": {"images": 14096, "ids": 1467}}
    assert expected_release_counts(ReleaseCounts(SplitCount(5)), {"combine_all": True}) == {
        "train": {"images": 5, "ids": None}
    }


def test_synthetic_datasets_are_told_apart(tmp_path: Path) -> None:
    (tmp_path / "world.json").write_text('{"domains": {"market-syn": {}}}')
    assert synthetic_dataset(tmp_path / "market-syn")
    assert not synthetic_dataset(tmp_path / "Market-1501-v15.09.15")
    assert not synthetic_dataset(tmp_path / "nowhere" / "x")


def test_stat_pass_and_bounded_decode(tmp_path: Path) -> None:
    a, empty = tmp_path / "a.jpg", touch(tmp_path / "empty.jpg")
    a.write_bytes(b"x" * 100)
    stats = file_stats([str(a), str(empty), str(tmp_path / "gone.jpg"), str(tmp_path)], workers=2)
    assert stats[:, 0].tolist() == [100, 0, -1, -1]  # a folder is no image file
    mask = decode_mask(1000, 0, seed=1, limit=50)
    assert mask.sum() == 50 and (mask == decode_mask(1000, 0, seed=1, limit=50)).all()
    assert decode_mask(1000, 20, seed=1, limit=50).sum() == 20
    assert decode_mask(30, 0, seed=1, limit=50).all()


def write_crop(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (32, 64), (90, 120, 30)).save(path, format="JPEG")
    return path


GATE_FILES = {  # a Market-1501 release in miniature: test ids disjoint from train ids, as released
    "bounding_box_train": MARKET_FILES["bounding_box_train"],
    "query": ["0011_c1s1_001051_00.jpg", "0015_c4s1_000002_00.jpg"],
    "bounding_box_test": [
        "0011_c5s1_000001_01.jpg",
        "0015_c1s1_000003_01.jpg",
        "0000_c1s1_000004_01.jpg",  # distractor
        "-1_c2s1_000005_01.jpg",  # junk
    ],
}
MINIATURE_COUNTS = (
    "validation.published_counts.market1501={train: {images: 4, ids: 2}, query: {images: 2, ids: 2}, "
    "gallery: {images: 3, ids: 3}, distractors: 1}"
)


@pytest.fixture
def real_params(tmp_path: Path) -> Path:
    """params.yaml with one real-layout Market miniature (given as its parent folder) as target."""
    build_folder_dataset(tmp_path / "data" / "Market-1501-v15.09.15", GATE_FILES, writer=write_crop)
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["data"].update(
        raw_dir=str(tmp_path / "data"),
        manifests_dir=str(tmp_path / "manifests"),
        sources=[],
        single_camera=[],
        targets=[{"name": "market", "format": "market1501", "root": str(tmp_path / "data")}],
    )
    raw["validation"].update(reports_dir=str(tmp_path / "reports"), summary_path=str(tmp_path / "v.json"))
    raw["promotion"]["thresholds"] = {"default": {"rank1": 0.1, "mAP": 0.1}}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_gate_checks_published_counts_of_a_real_release(real_params: Path, tmp_path: Path) -> None:
    from flows.validation import format_summary, validate_data

    params = load_params(real_params)  # the shipped table: the miniature is far from Market-1501
    prepare_manifests(params)
    summary = validate_data(params)
    assert not summary["success"] and summary["datasets"]["market"]["published_counts"] == "market1501"
    found = {(f["batch"], f["expectation"]): (f["observed_value"], f["expected_value"]) for f in summary["failures"]}
    assert {f["batch"] for f in summary["failures"]} == {"published/train", "published/query", "published/gallery"}
    assert found[("published/query", "expect_table_row_count_to_equal")] == (2, 3368)
    assert found[("published/gallery", "expect_column_unique_value_count_to_be_between")] == (3, 751)
    text = format_summary(summary)
    assert "FAIL expect_table_row_count_to_equal [query has the 3368 images of the release " in text
    assert "market/published/query: observed 2, expected 3368" in text

    params = load_params(real_params, [MINIATURE_COUNTS])  # the miniature's own counts: passes
    assert validate_data(params)["success"], format_summary(validate_data(params))
    # half-extracted: one query image lost, manifests rebuilt; the gate names split, expected, found
    (tmp_path / "data" / "Market-1501-v15.09.15" / "query" / "0015_c4s1_000002_00.jpg").unlink()
    prepare_manifests(params)
    summary = validate_data(params)
    lines = [f for f in format_summary(summary).splitlines() if f.startswith("FAIL")]
    assert "market/published/query: observed 1, expected 2" in "\n".join(lines)
    off = load_params(real_params, [MINIATURE_COUNTS, "validation.published_counts.market1501.check=false"])
    assert not [f for f in validate_data(off)["failures"] if f["batch"].startswith("published/")]
