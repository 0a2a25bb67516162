"""The benchmark suite in quick mode: every case runs through the real runner and reports
sane numbers; the runner renders rows, skips GPU-only cases on CPU, refreshes the docs page."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"
sys.path[:0] = [str(BENCH)]

import run as runner  # noqa: E402

CPU_CASES = [
    "online_relabel",
    "centroid_update",
    "sampler",
    "input_pipeline",
    "train_step_cpu",
    "train_step_gpu",
    "large_world",
]


def run_quick(tmp_path: Path, names: list[str]) -> dict:
    out = tmp_path / "quick.json"
    cmd = [sys.executable, str(BENCH / "run.py"), "--quick", "--max-wait", "0", "--results", str(out), "--only", *names]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert out.with_suffix(".md").exists()
    print(proc.stdout)  # per-case wall times, shown by pytest -s or on failure
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory) -> dict:
    return run_quick(tmp_path_factory.mktemp("bench"), CPU_CASES)


def test_every_quick_case_reports_time_memory_and_sizes(quick_results):
    expected = set(CPU_CASES) - (set() if torch.cuda.is_available() else {"train_step_gpu"})
    assert set(quick_results) == expected  # no GPU: train_step_gpu skipped, no entry
    for name, r in quick_results.items():
        assert r["seconds"] > 0 and 0 < r["peak_rss_gib"] < 8, name
        assert r["params"]["quick"] is True and r["params"]["sizes"], name
        assert r["machine"]["cores"] >= 1
        if r["baseline_seconds"] is not None:
            assert r["baseline_seconds"] > 0 and r["ratio_vs_baseline"] > 0, name


def test_online_relabel_judge_is_flat_in_images_and_ids(quick_results):
    p = quick_results["online_relabel"]["params"]
    small, large = p["judge_rows"]
    assert (small["ids"], large["ids"]) == (4_000, 200_000) and large["images"] == 2_000_000
    assert p["judge_flat_ratio"] < 5  # 50x the ids: the median step barely moves (~1 here)
    assert large["judge_ms"] < large["dense_ms"] and large["judge_rss_growth_mib"] < 16
    assert all(row["window_s"] > 0 for row in p["window_rows"])


def test_centroid_update_is_flat_in_the_number_of_ids(quick_results):
    p = quick_results["centroid_update"]["params"]
    assert [row["ids"] for row in p["rows"][:3]] == [1_000, 10_000, 100_000]
    assert p["max_abs_diff_vs_dense"] < 1e-5
    assert all(row["ours_rss_growth_mib"] < 16 for row in p["rows"])


def test_sampler_memory_stays_flat(quick_results):
    p = quick_results["sampler"]["params"]
    assert p["num_images"] == 100_000 and p["batches_drawn"] == 500
    assert abs(p["rss_growth_over_epoch_mib"]) < 32
    assert p["baseline_epoch_images"] > 50_000  # the whole epoch, built before batch 1


def test_input_and_train_cases_measure_both_sizes_and_models(quick_results):
    rows = quick_results["input_pipeline"]["params"]["rows"]
    assert [r["size"] for r in rows] == ["128×64", "256×128"]
    assert all(r["main_img_s"] > 0 and r["baseline_v1_img_s"] > 0 for r in rows)
    (row,) = quick_results["train_step_cpu"]["params"]["rows"]
    assert row["model"] == "ViT-S/16" and row["batch"] == 8 and row["gflop_per_step"] > 0


def test_large_world_trains_and_relabels_on_generated_files(quick_results):
    p = quick_results["large_world"]["params"]
    assert p["preset"] == "tiny" and p["final_step"] == 2
    synth, manifests, init, run = p["rows"]
    assert synth["stage"] == "synth" and synth["seconds"] > 0
    assert init["stage"].startswith("trainer init") and init["train_images"] > manifests["images"]
    # no pass over the data: the window judged only the batches' images, yet it accounts
    # for every pseudo id of the manifest (an id goes by a merge, or by filtering its images)
    w = p["window"]
    assert 0 < w["images_judged"] < manifests["images"]
    assert manifests["ids"] - w["images_filtered"] <= w["ids_remaining"] + w["ids_merged"] <= manifests["ids"]
    assert 0 < p["label_quality"]["before"]["purity"] <= 1
    assert run["relabel_window_s"] > 0 and run["tree_rss_gib"] > 0


def test_render_markdown_sizes_and_row_tables():
    machine = {
        "cpu": "X",
        "cores": 2,
        "ram_gib": 1.0,
        "torch": "t",
        "torch_threads": 2,
        "device": "cpu",
        "python": "3",
        "load_avg_1m": 0.0,
    }
    results = {
        "a": {
            "seconds": 2.0,
            "peak_rss_gib": 1.0,
            "baseline_seconds": 4.0,
            "ratio_vs_baseline": 2.0,
            "machine": machine,
            "params": {
                "sizes": "1M img",
                "rows_title": "scaling",
                "rows": [{"n": 10_000, "s": 0.5}, {"n": 1_000_000, "s": "not run"}],
            },
        },
    }
    md = runner.render_markdown(results)
    assert "| `a` | 1M img | 2.000 | 4.000 | 2.0× | 1.00 | M1 |" in md
    assert "`a`: scaling" in md and "| 10,000 | 0.5 |" in md and "| 1,000,000 | not run |" in md
    # a label column leads, wherever its key falls in results.json's sorted keys
    rows = [{"ms": 1.5, "stage": "decode"}, {"ms": 2.0, "stage": "stat", "note": None}]
    assert runner._row_table(rows)[0] == "| stage | ms | note |"
    assert runner._row_table(rows)[2] == "| decode | 1.5 | – |"


def test_update_doc_replaces_only_the_marked_block(tmp_path):
    doc = tmp_path / "benchmarks.md"
    doc.write_text(f"top\n{runner.DOC_BEGIN}\nold\n{runner.DOC_END}\nbottom\n")
    assert runner.update_doc("new table\n", doc)
    begin, end = runner.DOC_BEGIN, runner.DOC_END
    assert doc.read_text() == f"top\n{begin}\nnew table\n{end}\nbottom\n"
    plain = tmp_path / "plain.md"
    plain.write_text("no markers\n")
    assert not runner.update_doc("x", plain) and plain.read_text() == "no markers\n"


def test_the_table_lives_in_the_benchmarks_doc():
    """A full run refreshes docs/benchmarks.md: its markers exist there, once, in order."""
    text = runner.DOC.read_text()
    assert runner.DOC.name == "benchmarks.md" and runner.DOC.parent.name == "docs"
    assert text.count(runner.DOC_BEGIN) == 1 and text.count(runner.DOC_END) == 1
    assert text.index(runner.DOC_BEGIN) < text.index(runner.DOC_END)
    assert runner.DOC_BEGIN not in (runner.DOC.parents[1] / "README.md").read_text()


@pytest.mark.slow
def test_pipeline_overhead_quick(tmp_path):
    """Two tiny lengths, then two interleaved pairs (minutes on 2 busy cores)."""
    from statistics import median

    r = run_quick(tmp_path, ["pipeline_overhead"])["pipeline_overhead"]
    rows, demo = r["params"]["rows"], r["params"]["demo"]
    assert [row["steps"] for row in rows] == [2, 6, 6, 6]
    assert all(row["direct_s"] > 0 and row["wrapped_s"] > 0 for row in rows)
    assert "wrapped first" in rows[2]["run"] and "direct first" in rows[3]["run"]
    pairs = rows[2:]
    assert demo["pairs"] == 2
    # results are rounded to 0.01 s, and the median of two rounded values may not be
    assert r["baseline_seconds"] == demo["median_direct_s"]
    for key, arm in (("median_direct_s", "direct_s"), ("median_wrapped_s", "wrapped_s")):
        assert demo[key] == pytest.approx(median(p[arm] for p in pairs), abs=0.01)
    assert r["seconds"] == demo["median_wrapped_s"]
    fractions = [p["overhead_s"] / p["direct_s"] for p in pairs]
    assert demo["median_overhead_fraction"] == pytest.approx(median(fractions), abs=1e-4)
    assert r["params"]["target_met"] == (demo["median_overhead_fraction"] <= 0.05)
    tasks = r["params"]["demo_task_seconds"]
    assert len(tasks) == 2
    for pair, per_task in zip(pairs, tasks, strict=True):
        assert {"validate-data", "train", "evaluate", "outside tasks"} <= per_task.keys()
        assert sum(per_task.values()) == pytest.approx(pair["wrapped_s"], abs=0.1)
    # the server works for the flow run (API calls), and idles through the direct run
    for pair in pairs:
        assert pair["server_cpu_wrapped_s"] > pair["server_cpu_direct_s"] >= 0
    own = [sum(v for k, v in t.items() if k != "train") for t in tasks]
    assert [p["flow_own_s"] for p in pairs] == pytest.approx(own, abs=0.01)
    assert [p["train_task_s"] for p in pairs] == [t["train"] for t in tasks]
    extra_cpu = [p["server_cpu_wrapped_s"] - p["server_cpu_direct_s"] for p in pairs]
    accounted = [(o + c / os.cpu_count()) / p["direct_s"] for o, c, p in zip(own, extra_cpu, pairs, strict=True)]
    assert demo["median_accounted_overhead_fraction"] == pytest.approx(median(accounted), abs=1e-4)
    # a later run on the same data skips decoding every image: its gate is the cheaper one
    assert demo["gate_reused_s"] < demo["gate_full_s"]
