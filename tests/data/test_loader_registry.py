"""Format registry, combining datasets, relabelling across sources, and `dynamix manifest`."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pandas as pd
import pytest

from dynamix.data import cli as data_cli
from dynamix.data.manifest import read_manifest, relabel_for_training
from dynamix.data.registry import LOADERS, combine, load_dataset
from dynamix.errors import DynamixError, ManifestError


def test_cli_formats_mirror_the_registry() -> None:
    assert tuple(LOADERS) == data_cli.FORMATS


def test_domain_defaults_to_format(market_root: Path, cuhk_root: Path) -> None:
    assert set(load_dataset("market1501", market_root)["domain"]) == {"market1501"}
    df = load_dataset("cuhk03-np", cuhk_root, domain="cuhk03-detected", variant="detected")
    assert set(df["domain"]) == {"cuhk03-detected"}


def test_textual_options_are_coerced(make_msmt) -> None:
    root = make_msmt()
    assert (load_dataset("msmt17", root, merge_val="false")["split"] == "train").sum() == 3
    assert (load_dataset("msmt17", root, merge_val="yes")["split"] == "train").sum() == 4
    assert (load_dataset("msmt17", root, merge_val=False)["split"] == "train").sum() == 3
    with pytest.raises(DynamixError, match="merge_val='maybe' must be true or false"):
        load_dataset("msmt17", root, merge_val="maybe")


def test_unknown_format_lists_known_ones(tmp_path: Path) -> None:
    with pytest.raises(DynamixError) as err:
        load_dataset("viper", tmp_path)
    assert str(err.value) == (
        "unknown dataset format 'viper'; known formats: "
        "market1501, dukemtmc, msmt17, cuhk03-np, single_camera, cuhk-sysu, luperson-nl"
    )


def test_unknown_option_and_empty_domain(market_root: Path) -> None:
    with pytest.raises(DynamixError, match="msmt17: unknown option 'merge'; known options: "):
        load_dataset("msmt17", market_root, merge=True)
    with pytest.raises(DynamixError, match="market1501: unknown option 'x'; known options: combine_all"):
        load_dataset("market1501", market_root, x=1)
    with pytest.raises(DynamixError, match="domain must be a non-empty name"):
        load_dataset("market1501", market_root, domain=" ")


def test_combine_and_relabel_prefixes_pids(tmp_path: Path, make_file) -> None:
    manifests = []
    for name in ("a", "b"):
        root = tmp_path / name
        make_file(root / "bounding_box_train" / "0005_c1s1_000001_01.jpg")
        make_file(root / "bounding_box_train" / "0005_c2s1_000002_01.jpg")
        make_file(root / "bounding_box_train" / "0009_c1s1_000003_01.jpg")
        make_file(root / "query" / "0005_c1s1_000004_01.jpg")
        make_file(root / "bounding_box_test" / "0005_c2s1_000005_01.jpg")
        manifests.append(load_dataset("market1501", root, domain=f"market-{name}"))
    both = combine(manifests)
    assert len(both) == 10 and set(both["domain"]) == {"market-a", "market-b"}
    train = relabel_for_training(both[both["split"] == "train"])
    pid5 = train.loc[train["pid"] == 5].groupby("domain")["train_pid"].unique()
    assert pid5["market-a"].tolist() != pid5["market-b"].tolist()  # same pid, two people
    assert sorted(train["train_pid"].unique()) == [0, 1, 2, 3]  # contiguous 0..N-1
    assert sorted(train["train_camid"].unique()) == [0, 1, 2, 3]


def test_combine_rejects_same_domain_twice_and_shared_paths(market_root: Path) -> None:
    df = load_dataset("market1501", market_root)
    with pytest.raises(ManifestError, match="domain 'market1501' is in manifests 0 and 1"):
        combine([df, df])
    renamed = df.assign(domain="market-copy")
    with pytest.raises(ManifestError, match="duplicate image path"):
        combine([df, renamed])
    with pytest.raises(ManifestError, match="no manifests"):
        combine([])


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    data_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_writes_a_readable_manifest(make_msmt, tmp_path: Path, caplog) -> None:
    out, root = tmp_path / "manifests" / "msmt.parquet", make_msmt()
    argv = ["manifest", "--format", "msmt17", "--root", str(root), "--domain", "msmt-syn",
            "--option", "merge_val=false", "--out", str(out)]
    with caplog.at_level(logging.INFO, logger="dynamix.data.cli"):
        assert run_cli(argv) == 0
    df = read_manifest(out)
    assert df["split"].value_counts().to_dict() == {"train": 3, "gallery": 2, "query": 1}
    assert set(df["domain"]) == {"msmt-syn"}
    assert "msmt-syn train: 3 images, 2 ids, 3 cameras" in caplog.text
    assert "| query: 1 images, 1 ids, 1 cameras" in caplog.text
    assert not list(out.parent.glob(".*.tmp"))  # atomic write left no temporary file
    expected = load_dataset("msmt17", root, domain="msmt-syn", merge_val=False)
    pd.testing.assert_frame_equal(df, expected)


def test_cli_bad_option_syntax(market_root: Path, tmp_path: Path) -> None:
    argv = ["manifest", "--format", "market1501", "--root", str(market_root),
            "--option", "merge_val", "--out", str(tmp_path / "m.parquet")]
    with pytest.raises(DynamixError, match="--option 'merge_val': expected key=value"):
        run_cli(argv)
    assert not (tmp_path / "m.parquet").exists()
