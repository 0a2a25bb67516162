"""Feature files from a manifest or a folder: shapes, order, equal to the trainer's features."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from dynamix.cli import main as cli_main
from dynamix.data.manifest import read_manifest
from dynamix.errors import DynamixError
from dynamix.infer import extract_to_file, folder_images, load_encoder
from dynamix.train.features import extract_features


@pytest.fixture(scope="module")
def encoder(tiny_run):
    return load_encoder(tiny_run.checkpoint)


@pytest.fixture(scope="module")
def query_file(tiny_run, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("extract") / "query.npz"
    argv = [
        "extract",
        "--checkpoint",
        str(tiny_run.checkpoint),
        "--manifest",
        str(tiny_run.manifest("market-syn")),
        "--split",
        "query",
        "--out",
        str(out),
        "--batch-size",
        "7",
        "--device",
        "cpu",
        "--no-progress",
    ]
    assert cli_main(argv) == 0
    return out


def test_manifest_file_contents(tiny_run, query_file, encoder):
    df = read_manifest(tiny_run.manifest("market-syn"))
    query = df[df["split"] == "query"].reset_index(drop=True)
    with np.load(query_file, allow_pickle=False) as data:  # no pickle needed to read it
        arrays = {k: data[k] for k in data.files}
    assert set(arrays) == {"features", "paths", "pid", "camid", "checkpoint", "encoder", "step", "img_size"}
    feats = arrays["features"]
    assert feats.dtype == np.float32 and feats.shape == (len(query), encoder.embed_dim)
    np.testing.assert_allclose(np.linalg.norm(feats, axis=1), 1.0, atol=1e-5)
    assert arrays["paths"].tolist() == query["path"].astype(str).tolist()
    assert arrays["pid"].tolist() == query["pid"].tolist()
    assert arrays["camid"].tolist() == query["camid"].tolist()
    assert str(arrays["encoder"]) == "momentum" and int(arrays["step"]) == 2
    assert str(arrays["checkpoint"]) == str(tiny_run.checkpoint)
    assert arrays["img_size"].tolist() == [64, 32]
    # streamed in batches of 7 (the last one short) = the trainer's one-shot feature pass
    ref = extract_features(encoder, query["path"].astype(str).tolist(), img_size=(64, 32))
    np.testing.assert_allclose(feats, ref.numpy(), atol=1e-5)


def test_folder_gives_the_same_features_as_the_manifest(tiny_run, query_file, tmp_path):
    # the query images, some moved into nested folders: found recursively, sorted by path
    src = tiny_run.world / "market-syn" / "query"
    names = sorted(p.name for p in src.glob("*.jpg"))
    for i, name in enumerate(names):
        dest = tmp_path / "imgs" / ("a/b" if i % 3 == 0 else "") / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src / name, dest)
    (tmp_path / "imgs" / "notes.txt").write_text("not an image")
    out = tmp_path / "folder.npz"
    argv = [
        "extract",
        "--checkpoint",
        str(tiny_run.checkpoint),
        "--folder",
        str(tmp_path / "imgs"),
        "--out",
        str(out),
        "--no-progress",
    ]
    assert cli_main(argv) == 0
    with np.load(out) as f, np.load(query_file) as m:
        assert {"pid", "camid"}.isdisjoint(f.files)
        rel = [Path(p).relative_to(tmp_path / "imgs").as_posix() for p in f["paths"]]
        assert rel == sorted(rel) and len(rel) == len(names)
        by_name = dict(zip([Path(p).name for p in m["paths"]], m["features"], strict=True))
        for path, feat in zip(f["paths"], f["features"], strict=True):
            np.testing.assert_allclose(feat, by_name[Path(path).name], atol=1e-5)


def test_progress_counts_every_image_and_online_differs(tiny_run, tmp_path, query_file):
    paths = folder_images(tiny_run.world / "market-syn" / "query")
    online = load_encoder(tiny_run.checkpoint, "online")
    seen: list[int] = []
    out = extract_to_file(
        online,
        paths,
        tmp_path / "o.npz",
        batch_size=10,
        progress=seen.append,
        meta={"checkpoint": "x", "encoder": "online", "step": 2},
    )
    assert sum(seen) == len(paths) and max(seen) == 10
    with np.load(out) as o:
        assert str(o["encoder"]) == "online" and o["features"].shape[0] == len(paths)
        ref = extract_features(online, paths, img_size=(64, 32))
        assert torch.allclose(torch.from_numpy(o["features"]), ref, atol=1e-5)


def test_user_errors_are_one_line(tiny_run, tmp_path, capsys):
    base = ["extract", "--checkpoint", str(tiny_run.checkpoint)]
    cases = [
        (["--folder", str(tmp_path / "none"), "--out", str(tmp_path / "x.npz")], "no such folder"),
        (["--folder", str(tmp_path), "--out", str(tmp_path / "x.npz")], "no .jpg/.jpeg/.png"),
        (
            ["--manifest", str(tiny_run.manifest("market-syn")), "--split", "train2", "--out", str(tmp_path / "x.npz")],
            "no rows with split 'train2'; it has gallery",
        ),
        (["--manifest", str(tiny_run.manifest("market-syn")), "--out", str(tmp_path / "x.h5")], "must end in .npz"),
    ]
    for args, message in cases:
        assert cli_main([*base, *args, "--no-progress"]) == 2, args
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err
    assert not list(tmp_path.glob("*.npz")) and not list(tmp_path.glob(".*.tmp"))
    assert cli_main([*base, "--folder", str(tmp_path), "--split", "query", "--out", "x.npz"]) == 2
    assert "--split applies to --manifest only" in capsys.readouterr().err


def test_folder_images_rejects_a_file(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"")
    with pytest.raises(DynamixError, match="no such folder"):
        folder_images(tmp_path / "a.jpg")
