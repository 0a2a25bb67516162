"""The trainer on the tiny synthetic world: loss falls, outputs, exact resume, ablations."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from interrupt import Kill, KillAt
from state_compare import assert_same
from tiny_pipeline import TINY

from dynamix.cli import main as cli_main
from dynamix.config import load_params
from dynamix.errors import DynamixError
from dynamix.train.schedule import lr_at
from dynamix.train.state import load_checkpoint
from dynamix.train.trainer import Trainer, train


def tiny(params_file: Path, out_dir: Path, *extra: str):
    return load_params(params_file, [*TINY, f"train.out_dir={out_dir}", *extra])


def events(out_dir: Path, kind: str) -> list[dict]:
    lines = (out_dir / "log.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["event"] == kind]


def test_lr_warms_up_then_decays_to_the_floor():
    lrs = [lr_at(s, base_lr=1.0, warmup=5, total=50, min_ratio=0.1) for s in range(50)]
    assert lrs[0] == pytest.approx(0.2) and lrs[4] == pytest.approx(1.0)
    assert all(a < b for a, b in itertools.pairwise(lrs[:5]))
    assert all(a >= b for a, b in itertools.pairwise(lrs[4:]))
    assert lrs[-1] == pytest.approx(0.1)


def test_loss_falls_on_a_repeated_batch(params_file, tmp_path):
    params = tiny(
        params_file,
        tmp_path,
        "train.iters=100",
        "train.warmup_iters=0",
        "train.lr=0.001",
        "train.relabel.enabled=false",
    )
    trainer = Trainer(params)
    view1, view2, index = next(iter(trainer._loader()))
    losses = [trainer.train_step(view1, view2, index)["loss"] for _ in range(8)]
    assert all(math.isfinite(x) for x in losses)
    assert sum(losses[-2:]) / 2 < 0.8 * sum(losses[:2]) / 2, losses


def test_cli_run_writes_checkpoints_metrics_and_log(params_file, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--params", str(params_file), "--no-progress", "--set", f"train.out_dir={out}"]
    assert cli_main([*argv, *(a for s in TINY for a in ("--set", s))]) == 0
    for name in ("last.pt", "best.pt", "metrics.json", "log.jsonl", "params.json"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["step"] == 6 and metrics["relabel_rounds"] == 3
    for target in ("market-syn", "night-syn"):
        values = [metrics["targets"][target][k] for k in ("rank1", "rank5", "rank10", "mAP", "mINP")]
        assert all(math.isfinite(v) and 0 <= v <= 1 for v in values)
    assert set(metrics["label_quality"]) == {"before", "after"}  # ground truth: report only
    assert 0 < metrics["label_quality"]["before"]["purity"] <= 1
    steps = events(out, "step")
    assert [r["step"] for r in steps] == [1, 2, 3, 4, 5, 6]
    assert all(math.isfinite(r["loss"]) and r["img_s"] > 0 for r in steps)
    # windows at 2 and 4; the last step closes the open one (steps 4-6 judged), merging nothing
    windows = events(out, "relabel")
    assert [r["step"] for r in windows] == [2, 4, 6]
    assert windows[-1]["images_judged"] > 0 and windows[-1]["ids_merged"] == 0
    assert windows[-1]["merge_edges"] == 0
    assert [r["step"] for r in events(out, "eval")] == [3, 6]
    state = torch.load(out / "last.pt", weights_only=True)
    # 376 train images less the 34 of the source identities held out for model selection
    assert state["step"] == 6 and state["labels"].shape == (342,)
    assert metrics["selected_by"] == "source-holdout mAP"
    evals = events(out, "eval")
    holdout = [r["source-holdout/mAP"] for r in evals]
    assert metrics["best_step"] == evals[holdout.index(max(holdout))]["step"]  # chosen on it alone
    assert metrics["best_selection_score"] == max(holdout)
    assert "source-holdout" not in metrics["targets"]


def test_killed_and_resumed_run_ends_identical_to_uninterrupted(params_file, tmp_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    train(tiny(params_file, straight))
    with pytest.raises(Kill):  # dies during step 5, after last.pt at step 3 (and a relabel)
        train(tiny(params_file, killed), callbacks=[KillAt(5)])
    assert load_checkpoint(killed / "last.pt")["step"] == 3
    train(tiny(params_file, killed), resume=True)
    a, b = load_checkpoint(straight / "last.pt"), load_checkpoint(killed / "last.pt")
    a.pop("params"), b.pop("params")  # out_dir differs
    assert_same(a, b)
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (straight, killed))
    assert ma == mb
    # the log of the resumed run reads as one run: no duplicated steps
    assert [r["step"] for r in events(killed, "step")] == [1, 2, 3, 4, 5, 6]


def test_resume_without_or_with_a_corrupt_checkpoint_is_one_line(params_file, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--params", str(params_file), "--resume", "--set", f"train.out_dir={out}"]
    assert cli_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "last.pt: checkpoint not found" in err
    out.mkdir()
    (out / "last.pt").write_bytes(b"not a checkpoint")
    assert cli_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "last.pt: cannot read checkpoint" in err
    with pytest.raises(DynamixError, match="not a DynaMix training checkpoint"):
        torch.save({"x": 1}, out / "last.pt")
        load_checkpoint(out / "last.pt")


def test_ablation_switches_change_what_runs(params_file, tmp_path):
    out = tmp_path / "no_relabel_no_centroid"
    metrics = train(tiny(params_file, out, "train.relabel.enabled=false", "train.loss.centroid=false"))
    assert metrics["relabel_rounds"] == 0 and not events(out, "relabel")
    assert all("loss_centroid" not in r for r in events(out, "step"))
    assert metrics["label_quality"]["before"] == metrics["label_quality"]["after"]

    out = tmp_path / "multi_camera_only"
    only = ["train.sampler.single_camera=false", "train.sampler.keep_batch_size=false"]
    metrics = train(tiny(params_file, out, *only))
    steps = events(out, "step")
    # the p_m × k labelled images of a mixed batch, without the p_s × k on top
    assert all(r["single_images"] == 0 and r["batch"] == 8 for r in steps)
    assert metrics["single_camera_images"] == 0 and not events(out, "relabel")
    same_size = Trainer(tiny(params_file, tmp_path / "same_size", *only[:1], "train.sampler.keep_batch_size=true"))
    assert same_size.sampler.batch_size == 16 and same_size.sampler.p_s == 0

    trainer = Trainer(tiny(params_file, tmp_path / "random_mix", "train.sampler.matching=false"))
    assert trainer.sampler.matching is False


# A first window that keeps every kNN edge in its merge scope (every id has a centroid by then)
MERGE_EVERY_EDGE = [
    "train.bank_init=pass",
    "train.relabel.warmup=0",
    "train.relabel.tau_merge=0.0",
    "train.relabel.merge_mad=null",
    "train.relabel.merge_max_age=0",
]


def test_a_collapsing_window_keeps_its_labels_and_bank(params_file, tmp_path):
    # every kNN edge between two ids of one video passes: the merge would fold many ids
    sets = MERGE_EVERY_EDGE
    trainer = Trainer(tiny(params_file, tmp_path / "guarded", *sets, "train.relabel.max_merge_fraction=0.0"))
    labels, bank = trainer.labels.copy(), trainer.bank.state_dict()
    stats = trainer.end_window()
    assert stats["merge_rejected"] == 1 and stats["merge_edges"] > 0 and stats["ids_merged"] == 0
    assert (trainer.labels == labels).all() and trainer.relabel_rounds == 1
    assert torch.equal(trainer.bank.centroids, bank["centroids"])
    assert torch.equal(trainer.bank.counts, bank["counts"])
    # the same window without the guard does merge: the guard is what kept the labels
    unguarded = Trainer(tiny(params_file, tmp_path / "unguarded", *sets, "train.relabel.max_merge_fraction=1.0"))
    stats = unguarded.end_window()
    assert stats["merge_rejected"] == 0 and stats["ids_merged"] > 0
    assert (unguarded.labels != labels).any()


def test_a_window_that_leaves_too_few_ids_to_sample_stops_with_the_fix(params_file, tmp_path):
    # every id of any video may merge, and the guard allows it: 45 single-camera ids become 1
    sets = [*MERGE_EVERY_EDGE, "train.relabel.merge_scope=all"]
    trainer = Trainer(tiny(params_file, tmp_path, *sets, "train.relabel.max_merge_fraction=1.0"))
    with pytest.raises(DynamixError) as err:
        trainer.end_window()
    message = str(err.value)
    assert message.startswith("relabel window at step 0: sampler: ") and "\n" not in message
    assert "train.relabel.max_merge_fraction" in message and "--resume" in message


def test_id_loss_trains_a_classifier_that_resumes_with_the_run(params_file, tmp_path):
    out = tmp_path / "id"
    params = tiny(params_file, out, "train.loss.w_id=1.0", "train.relabel.enabled=false")
    trainer = Trainer(params)
    assert trainer.id_loss is not None
    multi = trainer.class_of[trainer.initial_labels[~trainer.single_images]]
    assert (multi >= 0).all() and trainer.id_loss.weight.shape[0] == len(set(multi.tolist()))
    assert (trainer.class_of[trainer.single_ids] == -1).all()  # no row for single-camera ids
    before = trainer.id_loss.weight.detach().clone()
    trainer.fit()
    steps = events(out, "step")
    assert all(math.isfinite(r["loss_id"]) and r["loss_id"] > 0 for r in steps)
    state = load_checkpoint(out / "last.pt")
    assert not torch.equal(state["id_classifier"]["weight"], before)  # it was optimised
    resumed = Trainer(params, resume=True)
    assert torch.equal(resumed.id_loss.weight, state["id_classifier"]["weight"])

    plain = tmp_path / "plain"  # a run without the classifier cannot resume with one
    train(tiny(params_file, plain, "train.relabel.enabled=false", "train.iters=3", "train.loss.w_id=0"))
    with pytest.raises(DynamixError, match="no ID classifier"):
        Trainer(tiny(params_file, plain, "train.relabel.enabled=false", "train.loss.w_id=1.0"), resume=True)


def test_cli_writes_dvc_metrics_and_plot_tables(params_file, tmp_path):
    out, curves, metrics_file = tmp_path / "run", tmp_path / "curves", tmp_path / "m" / "t.json"
    argv = [
        "train",
        "--params",
        str(params_file),
        "--no-progress",
        "--set",
        f"train.out_dir={out}",
        "--metrics-out",
        str(metrics_file),
        "--curves-dir",
        str(curves),
    ]
    assert cli_main([*argv, *(a for s in TINY for a in ("--set", s))]) == 0
    assert json.loads(metrics_file.read_text()) == json.loads((out / "metrics.json").read_text())
    steps = (curves / "steps.csv").read_text().splitlines()
    assert steps[0].startswith("step,loss,") and steps[-1].startswith("6,")
    evals = (curves / "eval.csv").read_text().splitlines()
    assert evals[0] == "step,target,rank1,rank5,rank10,mAP,mINP"
    last = {tuple(row.split(",")[:2]) for row in evals[1:]}
    assert {("6", "market-syn"), ("6", "night-syn"), ("3", "market-syn")} <= last
    relabel = (curves / "relabel.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in relabel[1:]] == ["2", "4", "6"]  # 6: the closing window
    header = relabel[0].split(",")
    assert header[-3:] == ["filter_threshold", "merge_threshold", "merge_rejected"]
    assert all(row.split(",")[-1] in ("0", "1") for row in relabel[1:])  # the collapse guard's verdict


def test_evaluation_is_the_shared_target_loop_over_the_eval_encoder(params_file, tmp_path):
    """The trainer's numbers and ranked lists are those of its eval encoder's features,
    ranked with the ``evaluation`` settings: the computation it made before the loop moved
    to dynamix.evaluation.targets (extract, evaluate_features, rank_queries per target)."""
    from dynamix.evaluation import evaluate_features
    from dynamix.evaluation.targets import REPORT_KEYS, rank_queries, ranked_rows, target_splits
    from dynamix.train.features import extract_features

    params = tiny(
        params_file,
        tmp_path,
        "evaluation.metric=euclidean",
        "train.eval_model=online",
        "tracking.ranked_list_queries=3",
    )
    trainer = Trainer(params)
    record = trainer._evaluate_targets()
    ev, kw = params.evaluation, {"img_size": trainer.img_size, "batch_size": 64}
    splits = target_splits(params)
    assert list(record["targets"]) == list(splits) == ["market-syn", "night-syn"]
    for name, (query, gallery) in splits.items():
        qf = extract_features(trainer.model, query["path"].tolist(), **kw)  # the online encoder
        gf = extract_features(trainer.model, gallery["path"].tolist(), **kw)
        ids = (query["pid"], gallery["pid"], query["camid"], gallery["camid"])
        direct = evaluate_features(
            qf,
            gf,
            *(i.to_numpy() for i in ids),
            max_rank=ev.max_rank,
            metric="euclidean",
            block_size=ev.block_size,
        ).as_dict()
        assert record["targets"][name] == {k: direct[k] for k in REPORT_KEYS}
        rows = ranked_rows(len(query), 3)
        assert record["ranked"][name] == rank_queries(qf, gf, query, gallery, rows, "euclidean")
    assert record["evaluated_on"]["encoder"] == "online"
    assert record["evaluated_on"]["metric"] == "euclidean"


def test_video_restricted_contrast_follows_the_live_labels(params_file, tmp_path):
    trainer = Trainer(
        tiny(
            params_file,
            tmp_path,
            "train.loss.single_negatives=video",
            "train.sampler.ids_per_video=2",
            "train.relabel.merge=false",
        )
    )
    single = trainer.single_images
    videos = trainer.table["train_camid"].to_numpy()
    groups = trainer.videos
    assert groups is not None
    # every single-camera id is in its images' video, every multi-camera id unrestricted
    assert (groups.id_video[trainer.labels[single]] == videos[single]).all()
    assert (groups.id_video[trainer.labels[~single]] == -1).all()
    # a batch of the sampler: its single-camera ids come in same-video pairs
    batch = trainer.sampler.next_batch()
    k, p_m = trainer.cfg.sampler.k, trainer.sampler.p_m
    pair_videos = videos[batch[p_m * k :: k]].reshape(-1, 2)
    assert (pair_videos[:, 0] == pair_videos[:, 1]).all()
    # filtering empties an id (all its images at -1); the window hands the labels on
    gone = trainer.labels[single][0]
    trainer.labels[trainer.labels == gone] = -1
    trainer.end_window()
    assert gone not in trainer.labels and trainer.videos.id_video[gone] == -1
    kept = np.unique(trainer.labels[single & (trainer.labels >= 0)])
    assert (trainer.videos.id_video[kept] >= 0).all()
    with pytest.raises(DynamixError, match="single_negatives' must be all or video"):
        Trainer(tiny(params_file, tmp_path / "bad", "train.loss.single_negatives=camera"))


def test_on_the_fly_relabeling_decides_in_the_step_and_never_passes_over_the_data(params_file, tmp_path, monkeypatch):
    # tau_filter near 1: every judged single-camera image is filtered in the step that sees it
    params = tiny(
        params_file,
        tmp_path,
        "train.relabel.warmup=0",
        "train.relabel.filter_min_history=1",
        "train.relabel.tau_filter=0.999",
        "train.relabel.reassign=false",
        "train.eval_every=0",
    )
    trainer = Trainer(params)
    assert trainer.relabeler is not None and not trainer.bank.initialized.any()  # no initial pass
    seen: list[list[str]] = []
    extract = trainer._features
    monkeypatch.setattr(trainer, "_features", lambda enc, paths: seen.append(list(paths)) or extract(enc, paths))
    batches = iter(trainer._loader())
    trainer.train_step(*next(batches))  # the first batch fills the similarity history
    view1, view2, index = next(batches)
    idx = index.numpy()
    single = trainer.single_images[idx]
    trainer.train_step(view1, view2, index)
    assert (trainer.labels[idx[single]] == -1).sum() > 0  # decided in this step, before its losses
    assert (trainer.labels[idx[~single]] == trainer.initial_labels[idx[~single]]).all()  # ground truth kept
    stats = trainer.end_window()
    assert stats["images_filtered"] > 0 and stats["filter_precision"] == stats["filter_precision"]  # measured
    assert not seen  # neither the step nor the window extracted features of any image
