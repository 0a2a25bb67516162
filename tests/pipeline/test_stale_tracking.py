"""No stale tracking record (issue 17): a killed ``dynamix track`` leaves no
``tracking.json``, and ``dynamix promote`` refuses a record of another ``best.pt``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from dynamix.cli import main as cli_main
from dynamix.config import load_params
from dynamix.errors import DynamixError
from dynamix.io import file_sha256

REPO = Path(__file__).resolve().parents[2]


def promote(out_dir: Path, record: Path, tmp_path: Path) -> int:
    sets = ["--set", f"train.out_dir={out_dir}", "--set", f"tracking.uri=sqlite:///{tmp_path / 'store.db'}"]
    argv = ["promote", "--params", str(REPO / "params.yaml"), *sets]
    return cli_main([*argv, "--tracking-file", str(record), "--out", str(tmp_path / "promotion.json")])


def test_promote_refuses_a_record_of_another_best_pt(tmp_path, capsys):
    from flows.tracking_cli import _run_id

    out = tmp_path / "run"
    out.mkdir()
    (out / "best.pt").write_bytes(b"the weights trained since")
    record = tmp_path / "tracking.json"
    record.write_text(json.dumps({"run_id": "r-old", "run_dir": str(out), "best_sha256": "0" * 64}))
    assert promote(out, record, tmp_path) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{record}: MLflow run r-old logged another best.pt than {out / 'best.pt'}" in err[0]
    assert "run `dynamix track`" in err[0]
    assert not (tmp_path / "promotion.json").exists()

    record.write_text(json.dumps({"run_id": "r-older", "run_dir": str(out)}))  # no checkpoint named
    assert promote(out, record, tmp_path) == 2
    assert "MLflow run r-older logged another best.pt" in capsys.readouterr().err

    params = load_params(REPO / "params.yaml", [f"train.out_dir={out}"])
    record.write_text(json.dumps({"run_id": "r-now", "best_sha256": file_sha256(out / "best.pt")}))
    args = argparse.Namespace(run_id=None, tracking_file=str(record))
    assert _run_id(args, params) == "r-now"  # the record of this best.pt is trusted
    assert _run_id(argparse.Namespace(run_id="r-chosen", tracking_file=str(record)), params) == "r-chosen"
    (out / "best.pt").write_bytes(b"retrained")
    with pytest.raises(DynamixError, match=r"logged another best\.pt"):
        _run_id(args, params)


def test_a_killed_track_leaves_no_record_to_promote(tracked_run, tmp_path, monkeypatch, capsys):
    import flows.tracking

    record = tmp_path / "tracking.json"  # the previous track's record, of this very run dir
    best = tracked_run.run_dir / "best.pt"
    record.write_text(json.dumps({"run_id": "previous", "best_sha256": file_sha256(best)}))
    (tmp_path / ".tracking.json.k1ll3d.tmp").write_text("half")

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # the process dies while the MLflow run is open

    monkeypatch.setattr(flows.tracking, "log_run_from_dir", killed)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    sets = [a for s in tracked_run.overrides for a in ("--set", s)]
    store = f"tracking.uri=sqlite:///{tmp_path / 'store.db'}"
    argv = ["track", "--params", str(tracked_run.params_file), *sets, "--set", store]
    assert cli_main([*argv, "--run-dir", str(tracked_run.run_dir), "--out", str(record)]) == 130
    assert not record.exists() and not list(tmp_path.glob(".tracking.json.*"))
    capsys.readouterr()
    assert promote(tracked_run.run_dir, record, tmp_path) == 2
    assert f"{record}: not found; run `dynamix track` first" in capsys.readouterr().err
