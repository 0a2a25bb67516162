"""No stale manifests (issue 17): ``prepare`` writes the set whole or not at all, with the
provenance of every manifest; ``validate`` refuses a set built for other params and fails
a dataset whose root's files changed since."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from dynamix.cli import main as cli_main
from dynamix.config import load_params
from dynamix.errors import DynamixError, ManifestError
from dynamix.prepare import check_manifests, prepare_manifests, require_current_manifests
from flows.validation import validate_data


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture
def env(tiny_world_copy: Path, tmp_path: Path, world_params):
    """A private tiny world, params pointed at it, the manifest set built."""
    path = world_params(tiny_world_copy, tmp_path)
    params = load_params(path)
    prepare_manifests(params)
    return path, params, tiny_world_copy


def test_the_summary_records_what_each_manifest_was_built_from(env):
    _, params, world = env
    summary = json.loads((Path(params.data.manifests_dir) / "summary.json").read_text())
    msmt = summary["msmt-syn"]
    assert msmt["role"] == "source" and msmt["format"] == "msmt17"
    assert msmt["root"] == str(world / "msmt-syn") and msmt["options"] == {"merge_val": True}
    assert msmt["files"] == sum(1 for p in (world / "msmt-syn").rglob("*") if p.is_file())
    assert msmt["fingerprint"].startswith("v2:") and msmt["release_root"] == msmt["root"]
    assert check_manifests(params) == {}
    prepare_manifests(params)  # the same data again: the same fingerprints
    again = json.loads((Path(params.data.manifests_dir) / "summary.json").read_text())
    assert again == summary


def test_a_failed_prepare_leaves_the_previous_complete_set(env):
    _, params, world = env
    manifests = Path(params.data.manifests_dir)
    before = snapshot(manifests)
    # duke-syn (a source, loaded first) changes; market-syn (a target, later) cannot load
    next(iter(sorted((world / "duke-syn" / "bounding_box_train").iterdir()))).unlink()
    (world / "market-syn" / "bounding_box_test" / "garbage.jpg").write_bytes(b"x")
    with pytest.raises(DynamixError, match=r"garbage\.jpg: name does not start"):
        prepare_manifests(params)
    assert snapshot(manifests) == before  # no new duke-syn beside the old market-syn
    assert [p.name for p in manifests.parent.iterdir() if p.name.startswith(".")] == []  # no leftovers

    # the old set no longer matches its roots: the gate fails both datasets, naming the fix
    summary = validate_data(params)
    assert not summary["success"]
    stale = [f for f in summary["failures"] if f["expectation"] == "manifest_matches_its_root"]
    assert [f["dataset"] for f in stale] == ["duke-syn", "market-syn"]
    assert "files under" in stale[0]["message"] and stale[0]["message"].endswith("run `dynamix prepare`")
    assert not summary["datasets"]["duke-syn"]["success"]
    with pytest.raises(ManifestError, match=r"manifest of duke-syn was built \(\d+ files then, \d+ now\)"):
        require_current_manifests(params)


def test_validate_refuses_manifests_built_for_other_params(env, capsys):
    path, params, _ = env
    raw = yaml.safe_load(path.read_text())
    raw["data"]["sources"][1]["options"] = {"merge_val": False}  # msmt-syn read differently now
    path.write_text(yaml.safe_dump(raw))
    other = load_params(path)
    with pytest.raises(ManifestError, match="msmt-syn was built with options"):
        validate_data(other)
    assert cli_main(["validate", "--params", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "summary.json" in err[0] and err[0].endswith("run `dynamix prepare`")

    (Path(params.data.manifests_dir) / "summary.json").unlink()  # not built by prepare
    with pytest.raises(ManifestError, match=r"summary\.json: not found"):
        check_manifests(params)


def test_a_killed_prepare_leaves_no_mix_and_the_next_one_cleans_up(env, monkeypatch):
    import dynamix.data.registry

    _, params, _ = env
    manifests = Path(params.data.manifests_dir)
    before = snapshot(manifests)
    real, loaded = dynamix.data.registry.load_dataset, []

    def dies_on_the_third(*args, **kwargs):
        loaded.append(kwargs["domain"])
        if len(loaded) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(dynamix.data.registry, "load_dataset", dies_on_the_third)
    with pytest.raises(KeyboardInterrupt):
        prepare_manifests(params)
    assert snapshot(manifests) == before
    monkeypatch.setattr(dynamix.data.registry, "load_dataset", real)
    (manifests.parent / ".manifests.killed.tmp").mkdir()  # what a SIGKILL would leave
    prepare_manifests(params)
    assert snapshot(manifests) == before  # same data, same bytes
    assert [p.name for p in manifests.parent.iterdir() if p.name.startswith(".")] == []
