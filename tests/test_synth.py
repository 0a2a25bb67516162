"""The synthetic re-ID world: layouts, counts, noise, determinism and the CLI.

One tiny world is generated per module (about a second) and checked from the files on
disk, the way the loaders and the training code will see it.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from dynamix.errors import DynamixError
from dynamix.synth import PRESETS, generate_world, get_preset, plan_world
from dynamix.synth import generate as generate_module
from dynamix.synth.cli import register
from dynamix.synth.presets import LabelledDomainSpec, SingleCameraSpec
from dynamix.synth.single_camera import plan_single_camera
from dynamix.synth.style import STYLE_DIMS
from dynamix.synth.summary import NOISE_RATES, realized_noise

MARKET_RE = re.compile(r"^(-1|\d{4})_c(\d)s(\d)_(\d{6})_(\d{2})\.jpg$")
DUKE_RE = re.compile(r"^(\d{4})_c(\d)_f(\d{7})\.jpg$")
MSMT_LINE_RE = re.compile(r"^(\d{4})/(\d{4})_(\d{3})_(\d{2})_\d{4}(?:morning|noon|afternoon)_\d{4}_0\.jpg (\d+)$")
CUHK_RE = re.compile(r"^(\d{4})_c([12])_(\d{2})\.png$")
SINGLE_RE = re.compile(r"^images/(v\d{5})/(t\d{6})_f\d{4}\.jpg$")
MARKET_FOLDERS = ("bounding_box_train", "query", "bounding_box_test")


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    # Not the shared tiny_world: this module tests the generator itself (2 workers here,
    # compared byte for byte with a 1-worker run below), so it must call it.
    return generate_world(tmp_path_factory.mktemp("synth") / "raw", "tiny", seed=0, workers=2)


@pytest.fixture(scope="module")
def meta(world) -> dict:
    return json.loads((world / "world.json").read_text())


def tree_hash(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def parse_market_folder(folder: Path, pattern: re.Pattern) -> pd.DataFrame:
    rows = []
    for path in sorted(folder.iterdir()):
        match = pattern.match(path.name)
        assert match, f"bad file name {path}"
        rows.append({"name": path.name, "pid": int(match.group(1)), "cam": int(match.group(2))})
    return pd.DataFrame(rows)


def market_like(root: Path, pattern: re.Pattern) -> dict[str, pd.DataFrame]:
    return {folder: parse_market_folder(root / folder, pattern) for folder in MARKET_FOLDERS}


def counts_from_folders(parts: dict[str, pd.DataFrame]) -> dict[str, int]:
    """The loader rules: junk dropped, distractors kept in the gallery but not an id."""
    out = {}
    for split, folder in zip(("train", "query", "gallery"), MARKET_FOLDERS, strict=True):
        df = parts[folder]
        out[f"{split}_images"] = int((df["pid"] >= 0).sum())
        out[f"{split}_ids"] = int(df.loc[df["pid"] > 0, "pid"].nunique())
    gallery = parts["bounding_box_test"]
    out["distractor_images"] = int((gallery["pid"] == 0).sum())
    out["junk_images"] = int((gallery["pid"] == -1).sum())
    return out


def check_protocol(parts: dict[str, pd.DataFrame], num_cameras: int) -> None:
    train, query, gallery = (parts[f] for f in MARKET_FOLDERS)
    for df in parts.values():
        assert df["cam"].between(1, num_cameras).all()
    assert (train["pid"] > 0).all() and (query["pid"] > 0).all()
    assert not set(train["pid"]) & (set(query["pid"]) | set(gallery["pid"]) - {0, -1})
    assert set(query["pid"]) <= set(gallery["pid"])
    for pid, cam in zip(query["pid"], query["cam"], strict=True):
        same = gallery[(gallery["pid"] == pid) & (gallery["cam"] != cam)]
        assert len(same), f"query pid {pid} cam {cam} has no cross-camera gallery match"


@pytest.mark.parametrize("name", ["market-syn", "night-syn"])
def test_market_layout_counts_and_protocol(world, meta, name):
    entry = meta["domains"][name]
    assert (entry["layout"], entry["role"]) == ("market1501", "target")
    parts = market_like(world / name, MARKET_RE)
    assert counts_from_folders(parts) == entry["counts"]
    gallery = parts["bounding_box_test"]
    assert (gallery["pid"] == 0).any() and (gallery["pid"] == -1).any()
    check_protocol(parts, entry["num_cameras"])
    assert entry["num_cameras"] == {"market-syn": 6, "night-syn": 4}[name]


def test_duke_layout(world, meta):
    entry = meta["domains"]["duke-syn"]
    assert (entry["layout"], entry["role"], entry["num_cameras"]) == ("dukemtmc", "source", 8)
    parts = market_like(world / "duke-syn", DUKE_RE)
    assert counts_from_folders(parts) == entry["counts"]
    check_protocol(parts, 8)


def read_msmt_list(root: Path, name: str) -> pd.DataFrame:
    rows = []
    for line in (root / name).read_text().splitlines():
        match = MSMT_LINE_RE.match(line)
        assert match, f"{name}: bad line {line!r}"
        folder, pid_in_name, _, cam, pid = match.groups()
        assert int(folder) == int(pid_in_name) == int(pid)
        rows.append({"rel": line.split()[0], "pid": int(pid), "camid": int(cam) - 1})
    return pd.DataFrame(rows)


def test_msmt_layout_and_lists(world, meta):
    root, entry = world / "msmt-syn", meta["domains"]["msmt-syn"]
    assert (entry["layout"], entry["role"], entry["num_cameras"]) == ("msmt17", "source", 15)
    lists = {s: read_msmt_list(root, f"list_{s}.txt") for s in ("train", "val", "query", "gallery")}
    for split, df in lists.items():
        assert df["camid"].between(0, 14).all()
        assert entry["counts"][f"{split}_images"] == len(df)
        assert entry["counts"][f"{split}_ids"] == df["pid"].nunique()
    trainval = pd.concat([lists["train"], lists["val"]])
    test = pd.concat([lists["query"], lists["gallery"]])
    for df, folder in ((trainval, "train"), (test, "test")):
        on_disk = sorted(p.relative_to(root / folder).as_posix() for p in (root / folder).rglob("*.jpg"))
        assert sorted(df["rel"]) == on_disk  # every image listed exactly once
        assert sorted(df["pid"].unique()) == list(range(df["pid"].nunique()))  # 0-based
    assert set(lists["val"]["pid"]) <= set(lists["train"]["pid"])
    assert set(lists["query"]["pid"]) <= set(lists["gallery"]["pid"])
    assert entry["counts"]["trainval_images"] == len(trainval)
    assert len(set(trainval["camid"]) | set(test["camid"])) > 8


def test_cuhk_variants(world, meta):
    root, entry = world / "cuhk-syn", meta["domains"]["cuhk-syn"]
    assert (entry["layout"], entry["num_cameras"]) == ("cuhk03-np", 2)
    names = {}
    for variant in ("labeled", "detected"):
        parts = market_like(root / variant, CUHK_RE)
        assert counts_from_folders(parts) == entry["counts"][variant]
        check_protocol(parts, 2)
        views = pd.concat(parts.values()).groupby("pid")["cam"].nunique()
        assert (views == 2).all()
        names[variant] = {f: sorted(df["name"]) for f, df in parts.items()}
    assert names["labeled"] == names["detected"]  # the same people and frames
    name = names["labeled"]["bounding_box_train"][0]
    labeled = np.asarray(Image.open(root / "labeled/bounding_box_train" / name), dtype=float)
    detected = np.asarray(Image.open(root / "detected/bounding_box_train" / name), dtype=float)
    assert labeled.shape == detected.shape and np.abs(labeled - detected).mean() > 0


@pytest.fixture(scope="module")
def single(world) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    root = world / "lupnl-syn"
    labels = pd.read_csv(root / "pseudo_labels.txt", sep=" ", names=["path", "pid"], dtype={"path": str})
    gt = pd.read_parquet(world / "ground_truth" / "lupnl-syn.parquet")
    noise = json.loads((world / "ground_truth" / "lupnl-syn_noise.json").read_text())
    return labels, gt, noise


def test_single_camera_layout(world, meta, single):
    labels, gt, _ = single
    root, entry = world / "lupnl-syn", meta["domains"]["lupnl-syn"]
    assert (entry["layout"], entry["role"]) == ("single_camera", "single_camera")
    on_disk = sorted(p.relative_to(root).as_posix() for p in (root / "images").rglob("*"))
    on_disk = [p for p in on_disk if p.endswith(".jpg")]
    assert sorted(labels["path"]) == on_disk
    parsed = labels["path"].str.extract(SINGLE_RE)
    assert parsed.notna().all().all()
    labels = labels.assign(video=parsed[0], tracklet=parsed[1])
    assert (labels.groupby("pid")["video"].nunique() == 1).all()  # tracking never spans videos
    assert (labels.groupby("tracklet")["video"].nunique() == 1).all()  # unique across domain
    assert (labels.groupby("tracklet")["pid"].nunique() == 1).all()
    counts = entry["counts"]
    assert counts["num_images"] == len(labels)
    assert counts["num_pseudo_ids"] == labels["pid"].nunique()
    assert counts["num_tracklets"] == labels["tracklet"].nunique()
    assert counts["num_videos"] == entry["num_videos"] == labels["video"].nunique()
    # The ground truth has one row per listed image, with the same path and pseudo pid.
    assert gt["path"].tolist() == labels["path"].tolist()
    assert gt["pseudo_pid"].tolist() == labels["pid"].tolist()
    assert gt["video"].tolist() == labels["video"].tolist()
    assert gt["tracklet"].tolist() == labels["tracklet"].tolist()
    assert str(gt["pseudo_pid"].dtype) == str(gt["true_id"].dtype) == "int64"


def test_noise_rates_realized(single, meta):
    _, gt, noise = single
    spec = get_preset("tiny").single_camera
    assert set(gt["noise"]) == {"clean", "switch", "junk"}
    assert (gt.loc[gt["noise"] == "junk", "true_id"] == -1).all()
    assert (gt.loc[gt["noise"] != "junk", "true_id"] >= 0).all()
    n_ids = gt.loc[gt["true_id"] >= 0, "true_id"].nunique()
    multi = (gt[gt["true_id"] >= 0].groupby("true_id")["video"].nunique() >= 2).mean()
    switched = gt.loc[gt["noise"] == "switch", "tracklet"].nunique() / gt["tracklet"].nunique()
    junk = (gt["noise"] == "junk").mean()
    realized = noise["realized"]
    assert realized["multi_video_rate"] == pytest.approx(multi)
    assert realized["switch_rate"] == pytest.approx(switched)
    assert realized["junk_rate"] == pytest.approx(junk)
    assert realized["num_true_ids"] == n_ids == spec.num_persons
    # Exact sampling: off from the request by rounding only.
    assert abs(multi - spec.multi_video_rate) <= 0.5 / n_ids + 1e-9
    assert abs(switched - spec.switch_rate) <= 0.5 / gt["tracklet"].nunique() + 1e-9
    assert abs(junk - spec.junk_rate) <= 1.0 / len(gt)
    appearances = gt[gt["noise"] == "clean"].groupby(["true_id", "video"])["pseudo_pid"].nunique()
    fragmented = (appearances >= 2).mean()
    assert realized["fragment_rate"] == pytest.approx(fragmented) and fragmented > 0
    assert realized["num_appearances"] == len(appearances)
    assert abs(fragmented - spec.fragment_rate) <= 0.5 / len(appearances) + 1e-9
    assert set(NOISE_RATES) == {"multi_video_rate", "switch_rate", "junk_rate", "fragment_rate"}
    assert noise["requested"] == {k: getattr(spec, k) for k in NOISE_RATES}
    assert meta["domains"]["lupnl-syn"]["noise"] == noise
    # A switched tracklet shows a different true person of its own video after the switch.
    for _, track in gt[gt["tracklet"].isin(gt.loc[gt["noise"] == "switch", "tracklet"])].groupby("tracklet"):
        people = track[track["noise"] != "junk"]
        assert people["noise"].iloc[0] == "clean"
        assert people.loc[people["noise"] == "switch", "true_id"].nunique() == 1
        assert set(people["true_id"]) != {people["true_id"].iloc[0]}
        in_video = (gt["video"] == track["video"].iloc[0]) & (gt["noise"] == "clean")
        video_people = set(gt.loc[in_video, "true_id"])
        assert set(people["true_id"]) <= video_people


def test_fragments_split_one_person_inside_one_video(single):
    """A fragment is the same true person under another pseudo id of the SAME video."""
    labels, gt, _ = single
    clean = gt[gt["noise"] == "clean"]
    assert (gt.groupby("pseudo_pid")["video"].nunique() == 1).all()  # fragments never cross videos
    assert (clean.groupby("pseudo_pid")["true_id"].nunique() == 1).all()  # every fragment: one person
    ids = clean.groupby(["true_id", "video"])["pseudo_pid"].nunique()
    flagged = clean.groupby(["true_id", "video"])["fragmented"].agg(["all", "any"])
    assert (flagged["all"] == flagged["any"]).all()  # the flag is per appearance
    assert ((ids >= 2) == flagged["all"]).all()  # flagged <=> split over >= 2 pseudo ids
    assert gt["fragmented"].dtype == bool
    assert (gt.groupby("tracklet")["fragmented"].nunique() == 1).all()  # junk rows carry their tracklet's flag
    # The ground truth still maps every listed image (true_ids() looks images up by path).
    assert gt["path"].is_unique and set(gt["path"]) == set(labels["path"])


def tiny_single_camera(**changes: float):
    spec = dataclasses.replace(get_preset("tiny").single_camera, **changes)
    return plan_single_camera(spec, 5, 0, get_preset("tiny").image_size)


def test_fragmentation_changes_only_pseudo_ids_of_split_tracklets():
    """Its own random stream: images, paths and every other label equal the unfragmented world."""
    plain, split = tiny_single_camera(fragment_rate=0.0), tiny_single_camera()
    pd.testing.assert_frame_equal(plain.images, split.images)  # every pixel's inputs and path
    a, b = plain.ground_truth, split.ground_truth
    others = [c for c in a.columns if c not in ("pseudo_pid", "fragmented")]
    pd.testing.assert_frame_equal(a[others], b[others])
    assert not a["fragmented"].any()
    assert (a[a["noise"] == "clean"].groupby(["true_id", "video"])["pseudo_pid"].nunique() == 1).all()
    changed = a["pseudo_pid"] != b["pseudo_pid"]
    assert changed.any() and b.loc[changed, "fragmented"].all()
    # Splitting only refines: a new pseudo id holds tracklets of one old id, and is a fresh number.
    pairs = pd.DataFrame({"old": a["pseudo_pid"], "new": b["pseudo_pid"]}).drop_duplicates()
    assert (pairs.groupby("new")["old"].nunique() == 1).all()
    assert set(b.loc[changed, "pseudo_pid"]).isdisjoint(a["pseudo_pid"])
    n_split = int((pairs.groupby("old")["new"].nunique() >= 2).sum())
    assert n_split == round(get_preset("tiny").single_camera.fragment_rate * a["pseudo_pid"].nunique())
    assert plain.counts["num_images"] == split.counts["num_images"]
    assert split.counts["num_pseudo_ids"] > plain.counts["num_pseudo_ids"]


@pytest.mark.parametrize("rate", [0.0, 0.07, 0.33])
def test_fragment_rate_is_exact(rate):
    spec = SingleCameraSpec(
        "z",
        num_videos=12,
        num_persons=150,
        multi_video_rate=0.2,
        switch_rate=0.1,
        junk_rate=0.05,
        fragment_rate=rate,
        tracklets_per_appearance=(1, 4),
        tracklet_length=(3, 4),
    )
    realized = realized_noise(plan_single_camera(spec, 5, 0, (64, 32)).ground_truth)
    assert abs(realized["fragment_rate"] - rate) <= 0.5 / realized["num_appearances"] + 1e-9
    assert realized["multi_video_rate"] == pytest.approx(0.2)  # the other rates are untouched


def mean_colours(paths: list[Path]) -> np.ndarray:
    return np.stack([np.asarray(Image.open(p), dtype=np.float64).mean(axis=(0, 1)) for p in paths])


def test_tracklet_frames_are_consecutive_and_similar(world, single):
    _, gt, _ = single
    frame = gt["path"].str.extract(r"_f(\d{4})\.jpg$")[0].astype(int)
    steps = frame.groupby(gt["tracklet"]).diff().dropna()
    assert (steps == 1).all()  # a tracklet is a run of consecutive video frames

    clean = gt[gt["noise"] == "clean"].reset_index(drop=True)
    paths, tracks = clean["path"].tolist(), clean["tracklet"].tolist()
    pairs = [(paths[i], paths[i + 1]) for i in range(len(paths) - 1) if tracks[i] == tracks[i + 1]]
    other = np.random.default_rng(0).permutation(len(paths))
    unrelated = [(paths[i], paths[j]) for i, j in zip(range(60), other[:60], strict=True)]

    def load(rel: str) -> np.ndarray:
        return np.asarray(Image.open(world / "lupnl-syn" / rel), dtype=np.float64)

    def mean_diff(pairs_: list[tuple[str, str]]) -> float:
        return float(np.mean([np.abs(load(a) - load(b)).mean() for a, b in pairs_]))

    assert mean_diff(pairs[:60]) < 0.6 * mean_diff(unrelated)


def test_single_camera_styles_are_broader_than_a_source(world):
    styles = pd.read_parquet(world / "ground_truth" / "styles.parquet")
    latent = {d: g[list(STYLE_DIMS)].to_numpy() for d, g in styles.groupby("domain")}
    assert len(latent["lupnl-syn"]) == get_preset("tiny").single_camera.num_videos
    assert len(latent["duke-syn"]) == 8
    broad, narrow = latent["lupnl-syn"].std(axis=0), latent["duke-syn"].std(axis=0)
    assert broad.mean() > 2.5 * narrow.mean()
    # The same holds in the pixels: per-image mean colour varies more across videos.
    sc = mean_colours(sorted((world / "lupnl-syn" / "images").rglob("*.jpg"))[::3])
    src = mean_colours(sorted((world / "duke-syn" / "bounding_box_train").glob("*.jpg")))
    assert sc.std(axis=0).mean() > 1.5 * src.std(axis=0).mean()


def test_images_decode_with_requested_size(world, meta):
    h, w = get_preset("tiny").image_size
    assert meta["image_size"] == [h, w]
    for name in meta["domain_order"]:
        files = sorted(p for p in (world / name).rglob("*") if p.suffix in (".jpg", ".png"))
        assert files, name
        for path in files[:: max(1, len(files) // 10)]:
            with Image.open(path) as im:
                assert (im.size, im.mode) == ((w, h), "RGB")
                assert im.format == ("PNG" if name == "cuhk-syn" else "JPEG")


def test_world_json_is_complete(world, meta):
    assert meta["preset"] == "tiny" and meta["seed"] == 0
    assert meta["generator_version"]
    assert meta["domain_order"] == ["market-syn", "night-syn", "duke-syn", "msmt-syn", "cuhk-syn", "lupnl-syn"]
    roles = Counter(d["role"] for d in meta["domains"].values())
    assert roles == {"source": 3, "target": 2, "single_camera": 1}
    for name, entry in meta["domains"].items():
        assert entry["name"] == name and (world / name).is_dir()
    assert sorted(p.name for p in world.iterdir()) == sorted([*meta["domain_order"], "ground_truth", "world.json"])


def test_same_seed_same_bytes_any_workers(world, tmp_path):
    again = generate_world(tmp_path / "again", "tiny", seed=0, workers=1)
    assert tree_hash(again) == tree_hash(world)
    other = generate_world(tmp_path / "other", "tiny", seed=1, workers=2)
    assert tree_hash(other) != tree_hash(world)
    # Domains do not share people or images across seeds either.
    a = (world / "market-syn" / "query").iterdir()
    b = {p.name: p.read_bytes() for p in (other / "market-syn" / "query").iterdir()}
    assert all(b.get(p.name) != p.read_bytes() for p in a)


def test_image_size_override(tmp_path):
    out = generate_world(tmp_path / "big", "tiny", seed=3, workers=1, image_size=(96, 48))
    assert json.loads((out / "world.json").read_text())["image_size"] == [96, 48]
    path = next((out / "cuhk-syn" / "labeled" / "query").iterdir())
    assert Image.open(path).size == (48, 96)
    with pytest.raises(DynamixError, match="image size"):
        generate_world(tmp_path / "bad", "tiny", image_size=(8, 4))


def test_refuses_to_overwrite(tmp_path):
    out = tmp_path / "raw"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(DynamixError, match="--overwrite"):
        generate_world(out, "tiny", workers=1)
    with pytest.raises(DynamixError, match="does not look like a synthetic world"):
        generate_world(out, "tiny", workers=1, overwrite=True)
    assert (out / "notes.txt").read_text() == "mine"
    (out / "notes.txt").unlink()
    generate_world(out, "tiny", workers=1)  # an empty folder is fine
    first = tree_hash(out)
    generate_world(out, "tiny", seed=5, workers=1, overwrite=True)
    assert tree_hash(out) != first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]  # no partial or old copies


def test_crash_leaves_no_partial_world(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = generate_module._render_chunk

    def flaky(task):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("disk full")
        return real(task)

    monkeypatch.setattr(generate_module, "_render_chunk", flaky)
    with pytest.raises(RuntimeError, match="disk full"):
        generate_world(tmp_path / "raw", "tiny", workers=1)
    assert list(tmp_path.iterdir()) == []


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="dynamix")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_handler(tmp_path):
    out = tmp_path / "cli"
    argv = ["synth", "--preset", "tiny", "--out", str(out), "--workers", "1", "--seed", "2"]
    assert run_cli(argv) == 0
    assert json.loads((out / "world.json").read_text())["seed"] == 2
    with pytest.raises(DynamixError, match="--overwrite"):
        run_cli(argv)
    with pytest.raises(DynamixError, match="--image-size"):
        run_cli([*argv, "--overwrite", "--image-size", "128by64"])
    with pytest.raises(SystemExit):
        run_cli(["synth", "--preset", "huge"])


def test_preset_validation():
    with pytest.raises(DynamixError, match="images_per_camera"):
        LabelledDomainSpec("x", "market1501", "target", 6, 5, 5, images_per_camera=(1, 3))
    with pytest.raises(DynamixError, match="num_cameras"):
        LabelledDomainSpec("x", "dukemtmc", "source", 12, 5, 5)
    with pytest.raises(DynamixError, match="switch_rate"):
        SingleCameraSpec("y", num_videos=2, num_persons=10, multi_video_rate=0.1, switch_rate=1.5, junk_rate=0.1)
    with pytest.raises(DynamixError, match="fragment_rate"):
        SingleCameraSpec(
            "y",
            num_videos=2,
            num_persons=10,
            multi_video_rate=0.0,
            switch_rate=0.1,
            junk_rate=0.1,
            fragment_rate=0.2,
            tracklets_per_appearance=(1, 1),
        )
    # Only appearances with >= 2 tracklets can be split: asking for more fails at planning.
    with pytest.raises(DynamixError, match=r"fragment_rate=0\.9 asks for"):
        tiny_single_camera(fragment_rate=0.9)
    with pytest.raises(DynamixError, match="unknown synth preset"):
        get_preset("huge")


def test_default_and_large_preset_sizes():
    """The sizes the README demo and the benchmarks rely on (planning only, no pixels)."""
    assert set(PRESETS) == {"tiny", "default", "large"}
    default = plan_world("default")
    assert default.image_size == (128, 64)
    by_name = {d.name: d for d in default.domains}
    for name in ("duke-syn", "msmt-syn", "cuhk-syn"):
        counts = by_name[name].counts
        counts = counts.get("labeled", counts)
        assert 150 <= counts["train_ids"] <= 250
        assert 7 <= counts["train_images"] / counts["train_ids"] <= 12
    for name in ("market-syn", "night-syn"):
        counts = by_name[name].counts
        assert 100 <= counts["query_ids"] <= 150 and 200 <= counts["query_images"] <= 600
        assert 1000 <= counts["gallery_images"] <= 3000
    single = by_name["lupnl-syn"].counts
    assert 300 <= single["num_videos"] <= 500 and 3000 <= single["num_pseudo_ids"] <= 5000
    realized = realized_noise(by_name["lupnl-syn"].ground_truth)
    spec = get_preset("default").single_camera
    assert spec.fragment_rate > spec.switch_rate > spec.junk_rate  # fragmentation: the commonest error
    assert abs(realized["fragment_rate"] - spec.fragment_rate) <= 0.5 / realized["num_appearances"] + 1e-9
    assert 25_000 <= single["num_images"] <= 40_000
    large = plan_single_camera(get_preset("large").single_camera, 5, 0, (128, 64))
    assert large.counts["num_images"] >= 1_000_000
    assert large.counts["num_pseudo_ids"] >= 100_000
