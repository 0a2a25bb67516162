"""No stale state in a training run (issue 17): a used ``train.out_dir`` is refused unless
``--resume`` or ``--overwrite``; killed writes are cleaned up; ``metrics.json`` marks a
finished run only; ``dynamix train`` refuses data the gate did not pass on these manifests,
unless ``--skip-validation``."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from interrupt import Kill, KillAt
from PIL import Image
from tiny_pipeline import TINY

from dynamix.cli import build_parser
from dynamix.cli import main as cli_main
from dynamix.config import load_params
from dynamix.data.manifest import manifest_path, read_manifest
from dynamix.errors import DynamixError, ManifestError
from dynamix.prepare import prepare_manifests
from dynamix.train.preflight import RUN_FILES, check_data, check_out_dir
from dynamix.train.state import load_checkpoint
from dynamix.train.trainer import Trainer, train


def tiny(params_file: Path, out: Path, *extra: str):
    return load_params(params_file, [*TINY, f"train.out_dir={out}", *extra])


def train_cli(params_file: Path, out: Path, *flags: str) -> int:
    sets = [a for s in [*TINY, f"train.out_dir={out}"] for a in ("--set", s)]
    return cli_main(["train", "--params", str(params_file), "--no-progress", *sets, *flags])


def one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_a_fresh_run_refuses_a_used_out_dir(params_file, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "best.pt").write_bytes(b"old")
    (out / "metrics.json").write_text("{}")
    assert train_cli(params_file, out) == 2
    line = one_line(capsys)
    assert f"{out}: holds a previous run (best.pt, metrics.json)" in line
    assert "--resume" in line and "--overwrite" in line
    assert (out / "best.pt").read_bytes() == b"old"  # nothing touched
    with pytest.raises(DynamixError, match="holds a previous run"):
        Trainer(tiny(params_file, out))
    with pytest.raises(SystemExit):  # continue it or replace it, not both
        build_parser().parse_args(["train", "--resume", "--overwrite"])
    other = tmp_path / "other"  # files that are not a run's: not a used out_dir
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    check_out_dir(other, resume=False, overwrite=False)


def test_overwrite_replaces_the_run_and_a_run_killed_early_looks_unfinished(params_file, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    for name in RUN_FILES:
        (out / name).write_text("stale")
    (out / ".last.pt.k1ll3d.tmp").write_bytes(b"half a checkpoint")  # a killed checkpoint write
    (out / "notes.txt").write_text("mine")
    with pytest.raises(Kill):  # killed before its first checkpoint
        train(tiny(params_file, out), overwrite=True, callbacks=[KillAt(1)])
    assert sorted(p.name for p in out.iterdir()) == ["log.jsonl", "notes.txt", "params.json"]
    assert "stale" not in (out / "params.json").read_text() + (out / "log.jsonl").read_text()
    # nothing there reads as a finished run: tracking refuses the folder
    assert cli_main(["track", "--params", str(params_file), "--run-dir", str(out), "--out", str(tmp_path / "t")]) == 2
    assert "metrics.json: not found" in capsys.readouterr().err

    assert train_cli(params_file, out, "--overwrite") == 0
    assert sorted(p.name for p in out.iterdir()) == sorted([*RUN_FILES, "notes.txt"])
    assert load_checkpoint(out / "last.pt")["step"] == 6
    assert (out / "notes.txt").read_text() == "mine"  # only the run's own files are replaced


def test_resume_cleans_killed_writes_and_drops_the_finished_mark(params_file, tmp_path):
    out = tmp_path / "run"
    short = ["train.relabel.enabled=false", "train.eval_every=3", "train.checkpoint_every=3"]
    train(tiny(params_file, out, "train.iters=3", *short))
    assert (out / "metrics.json").is_file()
    (out / ".best.pt.k1ll3d.tmp").write_bytes(b"half a checkpoint")
    with pytest.raises(Kill):  # continued to 6 steps, killed at step 4 (before a checkpoint)
        train(tiny(params_file, out, "train.iters=6", *short), resume=True, callbacks=[KillAt(4)])
    assert not list(out.glob(".*.tmp"))
    assert load_checkpoint(out / "last.pt")["step"] == 3
    assert not (out / "metrics.json").exists()  # the step-3 summary no longer describes the folder


def test_train_refuses_data_the_gate_did_not_pass(tiny_world, tiny_world_copy, world_params, tmp_path, capsys):
    path = world_params(tiny_world_copy, tmp_path)
    params = load_params(path)
    prepare_manifests(params)
    out = tmp_path / "run"
    summary_path = params.validation.summary_path
    assert train_cli(path, out) == 2  # the gate never ran
    line = one_line(capsys)
    assert f"{summary_path}: no data-gate result" in line and "--skip-validation" in line

    from flows.validation import validate_data

    cuhk = read_manifest(manifest_path(params, "cuhk-syn"))
    victim = Path(cuhk["path"].iloc[0])
    Image.new("RGB", (8, 16)).save(victim)  # too small: the gate fails
    assert not validate_data(params)["success"]
    assert train_cli(path, out) == 2
    line = one_line(capsys)
    assert f"{summary_path}: the data gate failed" in line and "cuhk-syn" in line
    out.mkdir()
    (out / "params.json").write_text("{}")
    assert train_cli(path, out, "--skip-validation") == 2  # past the gate check, stopped by the next
    err = capsys.readouterr().err
    assert "holds a previous run (params.json)" in err and "data gate" not in err

    shutil.copy2(tiny_world / victim.relative_to(tiny_world_copy), victim)
    assert validate_data(params)["success"]
    check_data(params)  # what `dynamix train` checks first: passes now
    victim.unlink()  # the data changes and the manifests are rebuilt: the pass was on other bytes
    prepare_manifests(params)
    with pytest.raises(DynamixError, match="passed on other manifests than those of cuhk-syn"):
        check_data(params)
    (tiny_world_copy / "night-syn" / "query" / "0001_c1s1_000000_99.jpg").write_bytes(b"new")
    with pytest.raises(ManifestError, match=r"files under .*night-syn changed since"):
        check_data(params)  # a file added, manifests not rebuilt
