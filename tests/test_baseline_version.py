"""The data version ``dynamix baseline`` records, which the promotion gate compares."""

from __future__ import annotations

import json
from pathlib import Path

from dynamix.baseline import data_version, version_differences
from dynamix.cli import main as cli_main
from dynamix.config import load_params
from dynamix.data.manifest import manifest_path, read_manifest
from dynamix.prepare import prepare_manifests


def test_the_baseline_file_records_the_data_version_that_any_change_moves(tiny_world_copy, world_params, tmp_path):
    path = world_params(tiny_world_copy, tmp_path)
    params = load_params(path)
    prepare_manifests(params)
    out = tmp_path / "baseline.json"
    assert cli_main(["baseline", "--params", str(path), "--out", str(out), "--plots-dir", str(tmp_path)]) == 0
    saved = json.loads(out.read_text())
    version = saved.pop("data_version")
    assert set(saved) == {"market-syn", "night-syn"} and saved["market-syn"]["mAP"] > 0  # targets stay top level
    assert version == data_version(params) and (version["metric"], version["max_rank"]) == ("cosine", 50)
    assert version_differences(version, data_version(params)) == []

    # one image's bytes changed, same file names and rows: another version of that target only
    manifest = read_manifest(manifest_path(params, "night-syn"))
    image = Path(manifest[manifest["split"] == "gallery"]["path"].iloc[0])
    image.write_bytes(image.read_bytes() + b"\0")
    now = data_version(params)
    assert now["targets"]["market-syn"] == version["targets"]["market-syn"]
    old, new = version["targets"]["night-syn"][:12], now["targets"]["night-syn"][:12]
    assert version_differences(version, now) == [f"other night-syn data ({old} vs {new} now)"]

    # other ranking settings, a target the file lacks, a file from before versions
    euclidean = data_version(load_params(path, ["evaluation.metric=euclidean"]))
    assert version_differences(now, euclidean) == ["evaluation.metric cosine vs euclidean now"]
    fewer = {**version, "targets": {"market-syn": version["targets"]["market-syn"]}}
    assert version_differences(fewer, version) == ["no night-syn"]
    assert version_differences(None, version) == ["no data version recorded (written before versions were recorded)"]
