"""The data-validation gate on the tiny synthetic world: good data passes every suite, and
each kind of corruption is caught by its named expectation, with the example path."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from dynamix.checks import decode_mask
from dynamix.cli import main as cli_main
from dynamix.config import load_params
from dynamix.prepare import prepare_manifests
from flows.validation import format_markdown, format_summary, gate_key, validate_data

IN_SET = "expect_column_values_to_be_in_set"
BETWEEN = "expect_column_values_to_be_between"


@pytest.fixture
def env(tiny_world_copy: Path, tmp_path: Path, world_params):
    """A private copy of the tiny world, the repo's params.yaml pointed at it, manifests built."""
    path = world_params(tiny_world_copy, tmp_path)
    params = load_params(path)
    prepare_manifests(params)
    return path, params


def manifest(params, name: str) -> tuple[Path, pd.DataFrame]:
    path = Path(params.data.manifests_dir) / f"{name}.parquet"
    return path, pd.read_parquet(path)


def failures(summary: dict, expectation: str, column: str | None, dataset: str) -> list[dict]:
    return [
        f
        for f in summary["failures"]
        if f["expectation"] == expectation and f["column"] == column and f["dataset"] == dataset
    ]


def only_failure(summary: dict, expectation: str, column: str, dataset: str) -> dict:
    found = failures(summary, expectation, column, dataset)
    assert len(found) == 1, format_summary(summary)
    assert found[0]["examples"], found[0]
    assert found[0]["examples"][0] in format_summary(summary)  # the path is in the summary
    return found[0]


def test_good_data_passes_every_suite_and_writes_reports(env):
    _, params = env
    summary = validate_data(params)
    assert summary["success"], format_summary(summary)
    assert summary["counts_preset"] == "tiny"
    assert set(summary["datasets"]) == {s.name for s in params.data.all_datasets()}
    on_disk = json.loads(Path(params.validation.summary_path).read_text())
    assert on_disk == summary
    gx = json.loads((Path(params.validation.reports_dir) / "market-syn.json").read_text())
    assert set(gx) == {"manifest", "count/train", "count/query", "count/gallery"}
    assert gx["manifest"]["success"] and len(gx["manifest"]["results"]) >= 20
    assert all(d["decoded"] == d["rows"] for d in summary["datasets"].values())
    assert "passed" in format_markdown(summary)


def test_reports_are_byte_identical_for_identical_data(env):
    """DVC hashes the report folder into dvc.lock: a rerun must not change it."""
    _, params = env
    validate_data(params)
    reports = Path(params.validation.reports_dir)
    first = {p.relative_to(reports): p.read_bytes() for p in reports.rglob("*") if p.is_file()}
    assert Path("data_docs/index.html") in first  # the Data Docs too, every page
    validate_data(params)
    again = {p.relative_to(reports): p.read_bytes() for p in reports.rglob("*") if p.is_file()}
    assert again == first
    assert b"validation_time" not in first[Path("market-syn.json")]


#: A tag that loads a file: a script, a stylesheet or icon, an image, or a CSS url().
LOADS = re.compile(r"<(?:script|link|img)\b[^>]*?\s(?:src|href)=\"([^\"#]+)\"|url\(['\"]?([^'\")]+)['\"]?\)")


def test_data_docs_list_every_expectation_and_load_nothing_remote(env):
    _, params = env
    summary = validate_data(params)
    index = Path(params.validation.reports_dir) / "data_docs" / "index.html"
    assert summary["data_docs"] == str(index) and index.is_file()
    assert f"GX Data Docs: {index}" in format_summary(summary)
    assert f"`{index}`; in MLflow: http://ui" in format_markdown(summary, "http://ui")
    site = index.parent
    text = index.read_text()
    for spec in params.data.all_datasets():  # the index lists every suite and its result
        assert f"{spec.name}.manifest" in text
        assert (site / "expectations" / spec.name / "manifest.html").is_file()
    page = next((site / "validations" / "market-syn" / "manifest").rglob("*.html")).read_text()
    assert "Status: Succeeded" in " ".join(re.sub(r"<[^>]+>", " ", page).split())
    for column in ("file_exists", "decodes", "num_train_cameras_of_pid", "pid_in_train_and_test"):
        assert column in page
    pages = sorted(site.rglob("*.html"))
    assert len(pages) > 2 * len(params.data.all_datasets())
    for html_page in pages:  # every file a page loads is local and present: renders offline
        html = html_page.read_text()
        assert "crossorigin" not in html
        for match in LOADS.finditer(html):
            url = match.group(1) or match.group(2)
            assert not re.match(r"(https?:)?//", url), f"{html_page}: loads {url}"
            assert (html_page.parent / url).resolve().is_file(), f"{html_page}: {url} missing"


def test_data_docs_under_a_relative_reports_dir(env, tmp_path, monkeypatch):
    path, _ = env
    monkeypatch.chdir(tmp_path)  # dvc.yaml's stage: relative paths from the repo root
    params = load_params(path, ["validation.reports_dir=reports/validation"])
    summary = validate_data(params)
    assert summary["data_docs"] == "reports/validation/data_docs/index.html"  # as in the lock
    assert (tmp_path / summary["data_docs"]).is_file()


def test_data_docs_show_a_failure(env):
    _, params = env
    _, df = manifest(params, "night-syn")
    Path(df["path"].iloc[2]).write_bytes(b"not a jpeg")
    summary = validate_data(params)
    assert not summary["success"]
    site = Path(summary["data_docs"]).parent
    page = next((site / "validations" / "night-syn" / "manifest").rglob("*.html")).read_text()
    text = " ".join(re.sub(r"<[^>]+>", " ", page).split())
    assert "Status: Failed" in text
    decodes = "decodes Status Expectation Observed Value values must belong to this set: True . "
    assert re.search(re.escape(decodes) + rf"1 unexpected values found\. ≈[\d.]+% of {len(df)} ", text)


def test_undecodable_image(env):
    _, params = env
    _, df = manifest(params, "market-syn")
    victim = df["path"].iloc[3]
    Path(victim).write_bytes(b"not a jpeg")
    f = only_failure(validate_data(params), IN_SET, "decodes", "market-syn")
    assert f["unexpected_count"] == 1 and f["examples"] == [victim]


def test_a_pass_is_reused_only_while_every_input_is_unchanged(env, monkeypatch):
    import dynamix.checks
    from flows import gate_record

    _, params = env
    first = validate_data(params, reuse=True)  # nothing recorded yet: a full run
    assert first["success"] and "reused_from" not in first
    assert gate_record.record_path(params).is_file()
    key = gate_key(params)
    prepare_manifests(params)  # the flow rebuilds the manifests every run: same bytes
    assert gate_key(params) == key

    def no_decode(path):
        raise AssertionError(f"decoded {path} although nothing changed")

    with monkeypatch.context() as m:
        m.setattr(dynamix.checks, "_decode", no_decode)
        again = validate_data(params, reuse=True)
    assert again["reused_from"] and again["datasets"] == first["datasets"]
    assert Path(again["data_docs"]).is_file()  # the reused pass still gives its Data Docs
    assert "reused: inputs unchanged since" in format_summary(again)
    Path(again["data_docs"]).unlink()  # a report it names is gone: validate again
    rebuilt = validate_data(params, reuse=True)
    assert "reused_from" not in rebuilt and Path(rebuilt["data_docs"]).is_file()

    _, df = manifest(params, "night-syn")
    victim = df["path"].iloc[5]
    Path(victim).write_bytes(b"not a jpeg")  # one image rewritten: its size and mtime move
    bad = validate_data(params, reuse=True)
    assert "reused_from" not in bad and not bad["success"]
    assert only_failure(bad, IN_SET, "decodes", "night-syn")["examples"] == [victim]
    assert not gate_record.record_path(params).exists()  # a failure is never reused
    assert not validate_data(params, reuse=True)["success"]  # still failing, run again


def test_deleted_image(env):
    _, params = env
    _, df = manifest(params, "duke-syn")
    victim = df["path"].iloc[-1]
    Path(victim).unlink()
    summary = validate_data(params)
    f = only_failure(summary, IN_SET, "file_exists", "duke-syn")
    assert f["examples"] == [victim]
    assert not failures(summary, IN_SET, "decodes", "duke-syn")  # missing is not also "corrupt"


def test_wrong_size_image(env):
    _, params = env
    _, df = manifest(params, "cuhk-syn")
    victim = df["path"].iloc[0]
    Image.new("RGB", (8, 16)).save(victim)
    summary = validate_data(params)
    assert only_failure(summary, BETWEEN, "height", "cuhk-syn")["examples"] == [victim]
    assert only_failure(summary, BETWEEN, "width", "cuhk-syn")["examples"] == [victim]


def test_train_identity_seen_by_one_camera(env):
    _, params = env
    path, df = manifest(params, "market-syn")
    pid = df.loc[df["split"] == "train", "pid"].iloc[0]
    rows = (df["split"] == "train") & (df["pid"] == pid)
    df.loc[rows, "camid"] = df.loc[rows, "camid"].iloc[0]
    df.to_parquet(path, index=False)
    f = only_failure(validate_data(params), BETWEEN, "num_train_cameras_of_pid", "market-syn")
    assert f["unexpected_count"] == int(rows.sum())
    assert set(f["examples"]) <= set(df.loc[rows, "path"])


def test_query_without_cross_camera_match(env):
    _, params = env
    path, df = manifest(params, "night-syn")
    q = df.index[df["split"] == "query"][0]
    df.loc[q, "pid"] = 9999  # nobody in the gallery
    df.to_parquet(path, index=False)
    summary = validate_data(params)
    f = only_failure(summary, IN_SET, "query_has_cross_camera_match", "night-syn")
    assert f["examples"] == [df.loc[q, "path"]]
    assert len(summary["failures"]) == 1


def test_train_pid_reused_in_test_split(env):
    _, params = env
    path, df = manifest(params, "duke-syn")
    train_pid = df.loc[df["split"] == "train", "pid"].iloc[0]
    g = df.index[df["split"] == "gallery"][0]
    df.loc[g, "pid"] = train_pid
    df.to_parquet(path, index=False)
    f = only_failure(validate_data(params), IN_SET, "pid_in_train_and_test", "duke-syn")
    assert f["unexpected_count"] == 1 and f["examples"] == [df.loc[g, "path"]]


def test_renumbered_test_pids_are_not_an_overlap(env):
    _, params = env
    _, df = manifest(params, "msmt-syn")
    train, test = df[df["split"] == "train"], df[df["split"] != "train"]
    assert set(train["pid"]) & set(test["pid"])  # MSMT17 numbers test pids from 0 again
    assert validate_data(params)["datasets"]["msmt-syn"]["success"]


def test_half_copied_dataset_fails_the_expected_count(env):
    _, params = env
    _, df = manifest(params, "market-syn")
    query = df[df["split"] == "query"]["path"]
    for p in query.iloc[: len(query) // 2]:
        Path(p).unlink()
    prepare_manifests(params)  # the manifest now lists only what was copied
    summary = validate_data(params)
    found = failures(summary, "expect_table_row_count_to_equal", None, "market-syn")
    assert [(f["batch"], f["observed_value"], f["expected_value"]) for f in found] == [
        ("count/query", len(query) - len(query) // 2, len(query))
    ]
    assert f"market-syn/count/query: observed {len(query) - len(query) // 2}" in format_summary(summary)


def test_single_camera_tracklet_spanning_two_videos(env):
    _, params = env
    path, df = manifest(params, "lupnl-syn")
    tracklet = df["tracklet"].iloc[0]
    other = df.loc[df["video"] != df["video"].iloc[0], "video"].iloc[0]
    df.loc[0, "video"] = other
    df.to_parquet(path, index=False)
    summary = validate_data(params)
    f = only_failure(summary, BETWEEN, "videos_of_tracklet", "lupnl-syn")
    assert f["unexpected_count"] == int((df["tracklet"] == tracklet).sum())
    assert set(f["examples"]) <= set(df.loc[df["tracklet"] == tracklet, "path"])


def test_null_and_negative_camid(env):
    _, params = env
    path, df = manifest(params, "cuhk-syn")
    df["camid"] = df["camid"].astype("float64")  # what pandas makes of a column with a hole
    df.loc[1, "camid"] = -1
    df.loc[2, "camid"] = np.nan
    df.to_parquet(path, index=False)
    summary = validate_data(params)
    assert only_failure(summary, BETWEEN, "camid", "cuhk-syn")["examples"] == [df.loc[1, "path"]]
    null = only_failure(summary, "expect_column_values_to_not_be_null", "camid", "cuhk-syn")
    assert null["examples"] == [df.loc[2, "path"]]
    typed = failures(summary, "expect_column_values_to_be_of_type", "camid", "cuhk-syn")
    assert typed and typed[0]["observed_value"] == "float64"
    assert "observed float64, expected int64" in format_summary(summary)


def test_decode_sample_is_seeded_and_bounded(env):
    path, _ = env
    a, b = decode_mask(100, 7, seed=3), decode_mask(100, 7, seed=3)
    assert a.sum() == 7 and np.array_equal(a, b) and decode_mask(5, 7, seed=3).all()
    summary = validate_data(load_params(path, ["validation.decode_sample=5"]))
    assert summary["success"]
    assert {d["decoded"] for d in summary["datasets"].values()} == {5}


def test_cli_exits_2_and_names_the_failing_expectation(env, capsys):
    path, params = env
    assert cli_main(["validate", "--params", str(path)]) == 0
    assert "data validation passed" in capsys.readouterr().out
    _, df = manifest(params, "night-syn")
    victim = df["path"].iloc[5]
    Path(victim).write_bytes(b"\x00" * 10)
    assert cli_main(["validate", "--params", str(path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert "1 expectations failed" in err[0]
    assert err[1].startswith(f"FAIL {IN_SET} [image decodes] night-syn: 1 of ")
    assert err[1].endswith(victim)
    assert json.loads(Path(params.validation.summary_path).read_text())["success"] is False


def test_prefect_flow_stops_before_baseline_on_bad_data(env, tmp_path):
    from prefect.testing.utilities import prefect_test_harness

    from flows.data_flow import data_flow

    path, params = env
    _, df = manifest(params, "market-syn")
    Path(df["path"].iloc[0]).write_bytes(b"broken")
    out = tmp_path / "baseline.json"
    with prefect_test_harness(), pytest.raises(Exception, match="data validation failed"):
        data_flow(params_path=str(path), metrics_out=str(out))
    assert not out.exists()
    summary = json.loads(Path(params.validation.summary_path).read_text())
    assert [f["column"] for f in summary["failures"]] == ["decodes"]
