"""`dynamix track` lineage: params from the run's own params.json, one MLflow run (and one
model) per run directory however often it is tracked, the data version as dataset inputs,
and one-line errors for stores that cannot be written, also when two tracks race."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from dynamix.cli import main as cli_main
from flows.run_info import data_inputs
from flows.run_outputs import run_fingerprint
from flows.tracking import configure, log_data_inputs, start_pipeline_run

# MLflow's own use of SQLAlchemy, not ours
pytestmark = pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning")


def track_argv(tracked_run, out: Path, *sets: str, run_dir: Path | None = None) -> list[str]:
    """``dynamix track`` of the session's tiny run dir with its params plus ``sets``."""
    overrides = [*tracked_run.overrides, *sets]
    argv = ["track", "--params", str(tracked_run.params_file), "--out", str(out)]
    argv += ["--run-dir", str(run_dir or tracked_run.run_dir)]
    return argv + [a for s in overrides for a in ("--set", s)]


def store_client(uri: str) -> MlflowClient:
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def histories(client: MlflowClient, run_id: str) -> dict[str, list[tuple[int, float]]]:
    keys = client.get_run(run_id).data.metrics
    return {k: [(m.step, m.value) for m in client.get_metric_history(run_id, k)] for k in keys}


def test_params_come_from_the_run_and_the_command_line_becomes_tags(tracked_run, tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    out = tmp_path / "tracking.json"
    # the run trained 4 steps at 64x32; the command line says 600 steps at 128x64
    wrong = ["train.iters=600", "model.img_height=128", "model.img_width=64"]
    assert cli_main(track_argv(tracked_run, out, f"tracking.uri={uri}", *wrong)) == 0
    record = json.loads(out.read_text())
    client = store_client(uri)
    run = client.get_run(record["run_id"])
    live = store_client(tracking_uri_of(tracked_run)).get_run(tracked_run.run_id)
    # exactly what the flow's live logging gave the same training (the session's run)
    assert run.data.params == live.data.params
    assert run.data.params["train.iters"] == "4" and run.data.params["model.img_height"] == "64"
    cli = {k: v for k, v in run.data.tags.items() if k.startswith("cli.")}
    assert cli == {
        "cli.train.iters": "600",
        "cli.model.img_height": "128",
        "cli.model.img_width": "64",
        "cli.tracking.uri": uri,
    }
    assert run.data.tags["dynamix.run_fingerprint"] == run_fingerprint(tracked_run.run_dir)
    assert run.info.run_name == "duke+msmt+cuhk→market+night · dynamix · seed 0"
    logged = json.loads(Path(client.download_artifacts(run.info.run_id, "config/params.json")).read_text())
    assert logged == json.loads((tracked_run.run_dir / "params.json").read_text())

    # tracked again, now without the wrong values: the same run, nothing twice, no second model
    before = histories(client, run.info.run_id)
    assert cli_main(track_argv(tracked_run, out, f"tracking.uri={uri}")) == 0
    again = json.loads(out.read_text())
    assert again["run_id"] == record["run_id"] and again["model_uri"] == record["model_uri"]
    experiment = run.info.experiment_id
    assert len(client.search_runs([experiment])) == 1
    assert len(client.search_logged_models([experiment])) == 1
    models = [p for p in (tmp_path / "store" / "mlartifacts").rglob("MLmodel")]
    assert len(models) == 1  # one copy of the weights on disk
    assert histories(client, run.info.run_id) == before
    tags = client.get_run(run.info.run_id).data.tags
    assert {k: v for k, v in tags.items() if k.startswith("cli.")} == {"cli.tracking.uri": uri}


def tracking_uri_of(tracked_run) -> str:
    from flows.tracking import tracking_uri

    return tracking_uri(tracked_run.params())


def test_tracking_a_run_logged_live_reuses_that_run(tracked_run, tmp_path, monkeypatch):
    """The flow logged the session's run live; `dynamix track` of its directory adds nothing."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = tracking_uri_of(tracked_run)
    client = store_client(uri)
    experiment = client.get_run(tracked_run.run_id).info.experiment_id
    runs_before = len(client.search_runs([experiment]))
    before = histories(client, tracked_run.run_id)
    out = tmp_path / "tracking.json"
    assert cli_main(track_argv(tracked_run, out)) == 0  # the run's own params and store
    record = json.loads(out.read_text())
    assert record["run_id"] == tracked_run.run_id
    assert record["model_uri"] == tracked_run.outputs["model_uri"]
    assert len(client.search_runs([experiment])) == runs_before
    after = histories(client, tracked_run.run_id)
    # every metric the live run logged is unchanged: no point twice. (Another test of the
    # session may have written a gate summary meanwhile, which track adds as a new metric.)
    assert {k: after[k] for k in before} == before
    assert set(after) - set(before) <= {"validation/failed_expectations"}
    assert all(len({step for step, _ in points}) == len(points) for points in after.values())
    assert not [k for k in client.get_run(tracked_run.run_id).data.tags if k.startswith("cli.")]


def test_the_data_version_is_a_dataset_input(tracked_run, tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    params = tracked_run.params(f"tracking.uri=sqlite:///{tmp_path / 'm.db'}")
    raw = Path(params.data.raw_dir)
    md5 = "0123456789abcdef0123456789abcdef.dir"  # 36 characters, as DVC writes a folder's
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data.dvc").write_text(f"outs:\n- md5: {md5}\n  path: {os.path.relpath(raw, tmp_path)}\n")
    (tmp_path / ".dvc").mkdir()
    (tmp_path / ".dvc" / "config").write_text(
        "[core]\n    remote = store\n['remote \"store\"']\n    url = s3://dvc/dynamix\n"
    )
    with start_pipeline_run(params, run_name="datasets") as run:
        log_data_inputs(params)
        log_data_inputs(params)  # twice: still one input per dataset
    logged = {d.dataset.name: d for d in MlflowClient().get_run(run.info.run_id).inputs.dataset_inputs}
    names = {"market-syn", "duke-syn", "msmt-syn", "cuhk-syn", "lupnl-syn", "night-syn"}
    wanted = {str(raw), *(f"manifests/{n}" for n in names)}
    assert set(logged) == wanted
    data = logged[str(raw)]
    assert data.dataset.digest == md5 and json.loads(data.dataset.source)["uri"] == str(raw.resolve())
    tags = {t.key: t.value for t in data.tags}
    assert tags["dvc.md5"] == md5 and tags["dvc.remote"] == "s3://dvc/dynamix"
    assert tags["mlflow.data.context"] == "training"
    market = logged["manifests/market-syn"]
    manifest = Path(params.data.manifests_dir) / "market-syn.parquet"
    assert market.dataset.digest == hashlib.md5(manifest.read_bytes()).hexdigest()
    assert {t.key: t.value for t in market.tags}["mlflow.data.context"] == "evaluation"
    # without data.dvc the manifests still carry the version
    (tmp_path / "data.dvc").unlink()
    assert {i.name for i in data_inputs(params)} == wanted - {str(raw)}


def one_line_error(capsys, argv: list[str]) -> str:
    assert cli_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


def test_an_unwritable_store_is_one_line_naming_the_path(tracked_run, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    out = tmp_path / "tracking.json"
    err = one_line_error(capsys, track_argv(tracked_run, out, f"tracking.uri=sqlite:///{blocker}/m.db"))
    assert err.startswith("dynamix track: error: tracking store") and str(blocker) in err
    assert "tracking.uri" in err and "writable" in err
    folder_db = tmp_path / "folder.db"
    folder_db.mkdir()
    err = one_line_error(capsys, track_argv(tracked_run, out, f"tracking.uri=sqlite:///{folder_db}"))
    assert f"tracking store {folder_db}: exists and is not a file" in err
    assert not out.exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_store_folder_is_one_line(tracked_run, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    err = one_line_error(capsys, track_argv(tracked_run, tmp_path / "t.json", f"tracking.uri=sqlite:///{locked}/m.db"))
    assert f"its folder {locked} is not writable" in err


def test_an_unwritable_artifact_location_is_one_line(tracked_run, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    uri = f"sqlite:///{tmp_path / 'store' / 'm.db'}"
    out = tmp_path / "tracking.json"
    argv = track_argv(tracked_run, out, f"tracking.uri={uri}", f"tracking.artifact_location={blocker}/art")
    err = one_line_error(capsys, argv)
    assert err.startswith(f"dynamix track: error: artifact location {blocker.as_uri()}/art: cannot make")
    assert "tracking.artifact_location" in err
    # an experiment made earlier with a location that can no longer be written: named too
    configure(tracked_run.params(f"tracking.uri={uri}", "tracking.experiment=old"))
    client = MlflowClient(tracking_uri=uri)
    client.create_experiment("older", artifact_location=f"{blocker.as_uri()}/older")
    err = one_line_error(capsys, track_argv(tracked_run, out, f"tracking.uri={uri}", "tracking.experiment=older"))
    assert f"artifact location {blocker.as_uri()}/older" in err and "tracking.experiment" in err
    assert not out.exists()


def test_two_concurrent_tracks_on_a_new_store_both_succeed(tracked_run, tmp_path):
    """Two processes, one new sqlite store, the same run dir: both exit 0, one run, one model."""
    uri = f"sqlite:///{tmp_path / 'new' / 'mlflow.db'}"
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dynamix.cli",
                *track_argv(tracked_run, tmp_path / f"t{i}.json", f"tracking.uri={uri}"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for i in range(2)
    ]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    for proc, err in zip(procs, errors, strict=True):
        assert proc.returncode == 0 and "Traceback" not in err, err
    records = [json.loads((tmp_path / f"t{i}.json").read_text()) for i in range(2)]
    assert records[0]["run_id"] == records[1]["run_id"]
    assert records[0]["model_uri"] == records[1]["model_uri"]
    client = store_client(uri)
    (experiment,) = [e.experiment_id for e in client.search_experiments() if e.name == "dynamix"]
    assert len(client.search_runs([experiment])) == 1
    assert len(client.search_logged_models([experiment])) == 1
