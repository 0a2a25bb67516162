"""LUPerson-NL in both released forms: the extract script's folders and the LMDB + keys.pkl.

The LMDB is written the way the release's ``LUP-NL/convert_lmdb.py`` writes it (sorted
country/city/video walk, videos numbered from 1 with repeated names skipped, key
``<video:05d>_<name without .jpg>``, one commit per city, ``keys.pkl`` of plain lists),
so both forms must give the same manifest, and the LMDB images must decode to the
pixels of the files they came from.
"""

from __future__ import annotations

import argparse
import logging
import os
import pickle
from pathlib import Path

import lmdb
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from dynamix.checks import image_facts
from dynamix.config import DatasetSpec
from dynamix.data import cli as data_cli
from dynamix.data.images import ManifestImageDataset, image_exists, image_nbytes, load_rgb, open_image_bytes
from dynamix.data.luperson_nl import load_luperson_nl
from dynamix.data.manifest import SINGLE_CAMERA, read_manifest
from dynamix.data.registry import load_dataset
from dynamix.errors import DatasetLayoutError, DynamixError
from dynamix.prepare import release_root

# <country>/<city>/<video>: crops named <pid:06d>_<frame:07d>_<obj:02d>.jpg
RELEASE = {
    "China/Beijing/Xk3_9aQ": ["000001_0000010_00.jpg", "000001_0000011_01.jpg", "000002_0000010_01.jpg"],
    "China/Beijing/ZZ_empty": [],  # no crops: still takes video number 2
    "China/Shanghai/a8Lm-0q": ["000003_0000005_00.jpg"],
    "France/Paris/Xk3_9aQ": ["000009_0000001_00.jpg"],  # a video name seen before: skipped by the script
    "France/Paris/qq71Bv0": ["000004_0000001_00.jpg", "000004_0000002_00.jpg"],
}
EXPECTED = pd.DataFrame(
    {
        "pid": [1, 1, 2, 3, 4, 4],
        "camid": [0, 0, 0, 1, 2, 2],
        "video": ["00001", "00001", "00001", "00003", "00004", "00004"],
        "tracklet": ["000001", "000001", "000002", "000003", "000004", "000004"],
    }
)
KEYS = [
    "00001_000001_0000010_00",
    "00001_000001_0000011_01",
    "00001_000002_0000010_01",
    "00003_000003_0000005_00",
    "00004_000004_0000001_00",
    "00004_000004_0000002_00",
]


def color(name: str) -> tuple[int, int, int]:
    """A colour of its own for every crop, from the pid, frame and box index in its name."""
    pid, frame, obj = (int(x) for x in name[:-4].split("_"))
    return (40 * pid % 256, 20 * frame % 256, 60 + 50 * obj)


def build_folders(root: Path) -> Path:
    """The extract script's tree, tiny JPEGs of distinct colours, plus the debris of real copies."""
    for video, names in RELEASE.items():
        (root / video).mkdir(parents=True, exist_ok=True)
        for name in names:
            Image.new("RGB", (16, 40), color(name)).save(root / video / name, format="JPEG", quality=95)
    (root / "France/Paris/qq71Bv0/Thumbs.db").write_bytes(b"junk")  # not an image
    Image.new("RGB", (16, 40)).save(root / "France/Paris/qq71Bv0/000004_0000003_00.png")  # not taken
    return root


def convert_lmdb(src: Path, dst: Path) -> Path:
    """What LUPerson-NL's convert_lmdb.py does to the folders (written from its description)."""
    store = dst / "lmdb"
    store.mkdir(parents=True)
    env = lmdb.open(str(store), map_size=1 << 24)
    keys: list[str] = []
    pids: list[int] = []
    stored: set[str] = set()
    for country in sorted(os.listdir(src)):
        for city in sorted(os.listdir(src / country)):
            with env.begin(write=True) as txn:  # one commit per city
                for video in sorted(os.listdir(src / country / city)):
                    if video in stored:
                        continue
                    stored.add(video)
                    number = len(stored)
                    folder = src / country / city / video
                    for name in sorted(n for n in os.listdir(folder) if n.endswith("jpg")):
                        key = f"{number:05d}_{name[:-4]}"
                        txn.put(key.encode("ascii"), (folder / name).read_bytes())
                        keys.append(key)
                        pids.append(int(name.split("_")[0]))
    env.close()
    (dst / "keys.pkl").write_bytes(pickle.dumps({"keys": keys, "pids": pids}))
    return dst


@pytest.fixture
def folders(tmp_path: Path) -> Path:
    return build_folders(tmp_path / "lup-nl")


@pytest.fixture
def store_root(folders: Path, tmp_path: Path) -> Path:
    return convert_lmdb(folders, tmp_path / "lupnl_lmdb")


def test_folder_form(folders: Path, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="dynamix.data.luperson_nl"):
        df = load_dataset("luperson-nl", folders, domain="lupnl")
    pd.testing.assert_frame_equal(df[list(EXPECTED)], EXPECTED, check_dtype=False)
    assert df["path"].iloc[0] == f"{folders}/China/Beijing/Xk3_9aQ/000001_0000010_00.jpg"
    assert df["path"].iloc[-1] == f"{folders}/France/Paris/qq71Bv0/000004_0000002_00.jpg"
    assert set(df["split"]) == {"train"} and set(df["source_kind"]) == {SINGLE_CAMERA}
    assert set(df["domain"]) == {"lupnl"}
    assert "1 video folders skipped" in caplog.text and "France/Paris/Xk3_9aQ" in caplog.text
    assert (  # the loaders' one extension warning, with the count and an example
        f"lupnl (LUPerson-NL) at {folders}: 1 image files not *.jpg left out, as the reference loaders do "
        "(e.g. France/Paris/qq71Bv0/000004_0000003_00.png)"
    ) in caplog.text


def test_root_above_the_release(folders: Path, store_root: Path, tmp_path: Path, caplog) -> None:
    """``data/`` holding the release, in either form, beside other releases (torchreid layout)."""
    data = tmp_path / "data"
    market = data / "market1501" / "Market-1501-v15.09.15" / "bounding_box_train"  # 3 levels, like a video
    market.mkdir(parents=True)
    Image.new("RGB", (16, 40)).save(market / "0002_c1s1_000451_03.jpg", format="JPEG")
    (data / "LUPerson-NL").symlink_to(folders)
    with caplog.at_level(logging.INFO, logger="dynamix.data.layout"):
        df = load_dataset("luperson-nl", data, domain="lupnl")
    assert f"reading the LUPerson-NL release found at {data / 'LUPerson-NL'}" in caplog.text
    pd.testing.assert_frame_equal(df[list(EXPECTED)], EXPECTED, check_dtype=False)
    assert df["path"].iloc[0] == f"{data}/LUPerson-NL/China/Beijing/Xk3_9aQ/000001_0000010_00.jpg"
    assert release_root(DatasetSpec("lupnl", "luperson-nl", str(data))) == data / "LUPerson-NL"

    (data / "LUPerson-NL").unlink()
    (data / "lupnl_lmdb").symlink_to(store_root)  # the LMDB form, one level down
    from_lmdb = load_dataset("luperson-nl", data, domain="lupnl")
    assert from_lmdb["path"].tolist() == [f"lmdb://{data}/lupnl_lmdb/lmdb#{k}" for k in KEYS]

    (data / "LUP-NL").symlink_to(folders)  # both forms beside each other: named, never guessed
    with pytest.raises(DatasetLayoutError) as err:
        load_luperson_nl(data, domain="x")
    assert (
        str(err.value)
        == f"{data}: holds 2 LUPerson-NL releases (LUP-NL/, lupnl_lmdb/); expected the root of one of them"
    )


def test_lmdb_form_equals_folder_form(folders: Path, store_root: Path) -> None:
    assert sorted(p.name for p in (store_root / "lmdb").iterdir()) == ["data.mdb", "lock.mdb"]
    from_lmdb = load_dataset("luperson-nl", store_root, domain="lupnl")  # form detected
    from_folders = load_dataset("luperson-nl", folders, domain="lupnl")
    assert from_lmdb["path"].tolist() == [f"lmdb://{store_root}/lmdb#{k}" for k in KEYS]
    pd.testing.assert_frame_equal(from_lmdb.drop(columns="path"), from_folders.drop(columns="path"))
    forced = load_luperson_nl(store_root, domain="lupnl", form="lmdb")
    pd.testing.assert_frame_equal(forced, from_lmdb)


def test_lmdb_images_decode_to_the_written_pixels(folders: Path, store_root: Path) -> None:
    lmdb_paths = load_luperson_nl(store_root, domain="x")["path"].tolist()
    files = load_luperson_nl(folders, domain="x")["path"].tolist()
    as_array = lambda img: torch.from_numpy(np.array(img))  # noqa: E731 - the raw pixels
    dataset = ManifestImageDataset(lmdb_paths, transform=as_array)
    for i, file in enumerate(files):
        assert open_image_bytes(lmdb_paths[i]) == Path(file).read_bytes()  # the stored bytes, unchanged
        assert image_nbytes(lmdb_paths[i]) == Path(file).stat().st_size
        pixels, index = dataset[i]
        assert index == i
        assert torch.equal(pixels, torch.from_numpy(np.array(Image.open(file).convert("RGB"))))
        assert np.abs(pixels.numpy().astype(int) - color(Path(file).name)).max() <= 3  # the colour written
    assert load_rgb(lmdb_paths[0]).size == (16, 40)
    respelled = lmdb_paths[0].replace("/lmdb#", "/../lupnl_lmdb/lmdb#")  # one store, another spelling
    assert open_image_bytes(respelled) == open_image_bytes(lmdb_paths[0])


def test_forked_workers_open_their_own_store(folders: Path, store_root: Path) -> None:
    paths = load_luperson_nl(store_root, domain="x")["path"].tolist()
    dataset = ManifestImageDataset(paths, transform=lambda img: torch.from_numpy(np.array(img)))
    first = [dataset[i][0] for i in range(len(dataset))]  # the parent opened the store first
    loader = torch.utils.data.DataLoader(dataset, batch_size=2, num_workers=2, multiprocessing_context="fork")
    batches = [b[0] for b in loader]
    assert torch.equal(torch.cat(batches), torch.stack(first))


def test_gate_facts_read_the_store(store_root: Path) -> None:
    paths = load_luperson_nl(store_root, domain="x")["path"].tolist()
    missing = f"lmdb://{store_root}/lmdb#00009_000001_0000001_00"
    facts = image_facts([*paths, missing], np.ones(len(paths) + 1, dtype=bool))
    assert facts["file_exists"].tolist() == [True] * len(paths) + [False]
    assert facts["decodes"].iloc[:-1].all() and pd.isna(facts["decodes"].iloc[-1])
    assert set(facts["height"].iloc[:-1]) == {40} and set(facts["width"].iloc[:-1]) == {16}
    assert not image_exists(missing) and image_nbytes(missing) is None
    with pytest.raises(DynamixError, match="not in the LMDB store"):
        load_rgb(missing)


def test_keys_pickle_that_would_run_code_is_refused(store_root: Path, tmp_path: Path) -> None:
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    keys_file = store_root / "keys.pkl"
    keys_file.write_bytes(pickle.dumps({"keys": [Payload()], "pids": [1]}))
    with pytest.raises(DynamixError) as err:
        load_luperson_nl(store_root, domain="x")
    message = str(err.value)
    assert message.startswith(f"{keys_file}: refused global posix.system") and "\n" not in message
    assert not marker.exists()
    keys_file.write_bytes(pickle.dumps({"keys": np.array(KEYS), "pids": np.arange(6)}))  # numpy: refused too
    with pytest.raises(DynamixError, match=r"keys\.pkl: refused global numpy"):
        load_luperson_nl(store_root, domain="x")
    keys_file.write_bytes(pickle.dumps({"keys": KEYS, "pids": [1, 1, 2, 3, 4, 4]})[:-5])  # truncated
    with pytest.raises(DynamixError, match=r"keys\.pkl: not a readable pickle"):
        load_luperson_nl(store_root, domain="x")


def one_line_error(root: Path, **options) -> str:
    with pytest.raises(DatasetLayoutError) as err:
        load_luperson_nl(root, domain="x", **options)
    assert "\n" not in str(err.value)
    return str(err.value)


def test_half_broken_layouts(folders: Path, store_root: Path) -> None:
    keys_file = store_root / "keys.pkl"
    keys = pickle.loads(keys_file.read_bytes())
    keys_file.write_bytes(pickle.dumps({"keys": [*KEYS, "00004_000004_0000009_00"], "pids": [*keys["pids"], 4]}))
    assert one_line_error(store_root) == (
        f"{store_root / 'lmdb'}: holds 6 entries but {keys_file} lists 7 keys; "
        "expected the lmdb/ and keys.pkl written by one run of convert_lmdb.py"
    )
    keys_file.write_bytes(pickle.dumps({"keys": KEYS, "pids": [1, 1, 2, 3, 4, 5]}))
    assert "pids[5] = 5 but keys[5] = '00004_000004_0000002_00'" in one_line_error(store_root)
    keys_file.write_bytes(pickle.dumps({"keys": [*KEYS[:5], "00004-000004"], "pids": keys["pids"]}))
    assert "keys[5] = '00004-000004' is not <video>_<pid>_<frame>_<obj>" in one_line_error(store_root)
    keys_file.unlink()  # lmdb/ without its keys.pkl
    assert one_line_error(store_root).startswith(f"{keys_file}: file not found; expected keys.pkl as")
    (store_root / "lmdb" / "data.mdb").unlink()
    assert one_line_error(store_root).startswith(f"{store_root / 'lmdb' / 'data.mdb'}: file not found")

    bad = folders / "France/Paris/qq71Bv0/000004_0000004.jpg"  # an obj field lost
    Image.new("RGB", (16, 40)).save(bad, format="JPEG")
    assert one_line_error(folders) == (
        f"{bad}: name is not <pid:06d>_<frame:07d>_<obj:02d>.jpg; expected crops named like 000123_0004567_02.jpg"
    )
    empty = folders.parent / "empty"
    (empty / "China/Beijing/v1").mkdir(parents=True)
    assert "no <country>/<city>/<video>/*.jpg crops found" in one_line_error(empty)
    with pytest.raises(DynamixError, match="option form='zip' is not one of auto, folders, lmdb"):
        load_luperson_nl(folders, domain="x", form="zip")


def test_manifest_cli_reads_the_lmdb(store_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "lupnl.parquet"
    parser = argparse.ArgumentParser()
    data_cli.register(parser.add_subparsers(dest="command"))
    argv = ["manifest", "--format", "luperson-nl", "--root", str(store_root), "--option", "form=lmdb"]
    args = parser.parse_args([*argv, "--domain", "lupnl", "--out", str(out)])
    assert args.func(args) == 0
    df = read_manifest(out)
    pd.testing.assert_frame_equal(df[list(EXPECTED)], EXPECTED, check_dtype=False)
    assert df["path"].str.startswith(f"lmdb://{store_root}/lmdb#").all()
