"""On-the-fly relabeling (dynamix.relabel.online) on hand-made features with known answers."""

import dataclasses
import io
import logging
import math
import time

import numpy as np
import pytest
import torch

from dynamix.centroids import CentroidBank
from dynamix.config import RelabelConfig
from dynamix.relabel import (
    OnlineRelabeler,
    filter_precision,
    majority_true_id,
    merge_precision,
    reassign_precision,
)
from dynamix.relabel.online import STAT_KEYS, TRUTH_KEYS

DIM = 8


def e(axis: int, tilt: int | None = None, amount: float = 0.0) -> np.ndarray:
    """Unit vector on ``axis``, tilted towards ``tilt`` by ``amount``."""
    v = np.zeros(DIM, np.float32)
    v[axis] = 1.0
    if tilt is not None:
        v[tilt] = amount
    return v / np.linalg.norm(v)


def feats(*vectors: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.stack(vectors))


def bank_with(centroids: list[np.ndarray | None]) -> CentroidBank:
    """Bank of len(centroids) ids; None = not initialised (never seen)."""
    bank = CentroidBank(len(centroids), DIM, dtype="fp32")
    rows = [i for i, c in enumerate(centroids) if c is not None]
    bank.init_from(feats(*[centroids[i] for i in rows]), torch.tensor(rows))
    bank.finish_init()
    return bank


def cfg(**kw) -> RelabelConfig:
    base = dict(
        warmup=0,
        every=10,
        filter_min_history=0,
        filter_mad=None,
        tau_filter=0.5,
        tau_relabel=0.7,
        margin=0.1,
        tau_merge=0.9,
        topk=3,
        merge_max_age=0,
    )
    return dataclasses.replace(RelabelConfig(), **{**base, **kw})


# Images 0-3: multi-camera id 0; 4-7: id 1 (video 0); 8-11: id 2 (video 0); 12-15: id 3 (video 1).
LABELS = np.repeat(np.arange(4), 4)
SINGLE = LABELS > 0
VIDEOS = np.array([0] * 4 + [0] * 8 + [1] * 4)
AXES = [e(0), e(1), e(2), e(3)]


def relabeler(labels=LABELS, videos=VIDEOS, **kw) -> OnlineRelabeler:
    return OnlineRelabeler(labels, SINGLE, videos, len(AXES), cfg(**kw))


def judge(rel: OnlineRelabeler, bank: CentroidBank, index, vectors, labels=LABELS, step: int = 0) -> np.ndarray:
    index = np.asarray(index)
    return rel.judge(index, feats(*vectors), labels[index], bank, step)


def test_an_image_far_from_its_centroid_is_filtered_and_multi_camera_never_changes():
    rel, bank = relabeler(), bank_with(AXES)
    out = judge(rel, bank, [0, 1, 4, 5, 6, 7], [e(5), e(5), e(1), e(1), e(1), e(5)])
    assert out.tolist() == [0, 0, 1, 1, 1, -1]  # image 7 fits no id; multi-camera image 1 untouched
    stats = rel.end_window(np.where(np.arange(16) == 7, -1, LABELS), bank, 9).stats
    assert (stats["images_judged"], stats["images_filtered"], stats["images_relabeled"]) == (4, 1, 0)


def test_an_image_matching_a_same_video_id_is_moved_not_filtered():
    rel, bank = relabeler(), bank_with(AXES)
    out = judge(rel, bank, [4, 5, 6, 7], [e(1), e(1), e(1), e(2, 1, 0.1)])
    assert out.tolist() == [1, 1, 1, 2]
    off = relabeler(reassign=False)
    assert judge(off, bank, [4, 5, 6, 7], [e(1), e(1), e(1), e(2, 1, 0.1)]).tolist() == [1, 1, 1, -1]
    neither = relabeler(reassign=False, filter=False)
    assert judge(neither, bank, [4, 5, 6, 7], [e(1), e(1), e(1), e(2)]).tolist() == [1, 1, 1, 1]


def test_other_video_ids_are_candidates_once_they_are_knn_neighbours():
    rel, bank = relabeler(filter=False), bank_with(AXES)
    batch = ([4, 5, 6, 7], [e(1), e(1), e(1), e(3)])  # image 7 looks like id 3 of video 1
    assert judge(rel, bank, *batch).tolist() == [1, 1, 1, 1]  # no graph yet: only video 0's ids
    rel.end_window(LABELS, bank, 0)  # builds the kNN graph: every single id neighbours id 1
    assert 3 in rel.neighbours[1]
    assert judge(rel, bank, *batch, step=1).tolist() == [1, 1, 1, 3]


def merge_world(scope: str, **kw):
    """Ids 1 and 2 (video 0) nearly identical, id 3 (video 1) nearly identical too."""
    bank = bank_with([e(0), e(4), e(4, 5, 0.05), e(4, 6, 0.05)])
    rel = relabeler(merge_scope=scope, **kw)
    return rel, bank


def test_same_video_twins_merge_and_scope_video_keeps_other_videos_apart():
    rel, bank = merge_world("video")
    result = rel.end_window(LABELS, bank, 0)
    assert result.mapping.tolist() == [0, 1, 1, 3]
    assert result.labels.tolist() == [0] * 4 + [1] * 8 + [3] * 4
    assert bank.counts.tolist() == [1, 2, 0, 1]  # id 2 folded into id 1
    assert result.stats["ids_merged"] == 1 and result.stats["ids_remaining"] == 2

    rel, bank = merge_world("all", max_merge_fraction=1.0)
    result = rel.end_window(LABELS, bank, 0)
    assert result.mapping.tolist() == [0, 1, 1, 1]  # across videos too; never the multi-camera id 0


def test_a_closing_window_reports_without_merging():
    rel, bank = merge_world("video")  # the twins of the test above would merge
    before = bank.centroids.clone()
    result = rel.end_window(LABELS, bank, 0, merge=False)
    assert result.mapping.tolist() == [0, 1, 2, 3] and result.labels.tolist() == LABELS.tolist()
    assert result.stats["ids_merged"] == 0 and result.stats["merge_edges"] == 0
    assert torch.equal(bank.centroids, before)
    merged = rel.end_window(LABELS, bank, 0).stats
    assert merged["ids_merged"] == 1 and merged["merge_threshold"] >= 0.9  # merge=True: they do
    closing = rel.end_window(LABELS, bank, 1, merge=False).stats
    assert math.isnan(closing["merge_threshold"])  # no merge, no threshold (not the last one's)


def test_pending_follows_the_judged_images_of_the_open_window():
    rel, bank = relabeler(filter=False), bank_with(AXES)
    assert not rel.pending()
    judge(rel, bank, [4, 5, 6, 7], [e(1), e(1), e(1), e(3)])
    assert rel.pending()
    rel.end_window(LABELS, bank, 0)
    assert not rel.pending()


def test_collapse_guard_rejects_a_window_merging_too_many_ids(caplog):
    rel, bank = merge_world("all", max_merge_fraction=0.5)
    before = bank.centroids.clone()
    with caplog.at_level(logging.WARNING, logger="dynamix.relabel.online"):
        result = rel.end_window(LABELS, bank, 0)
    assert result.stats["merge_rejected"] == 1 and result.stats["ids_merged"] == 0
    assert result.mapping.tolist() == [0, 1, 2, 3] and result.labels.tolist() == LABELS.tolist()
    assert torch.equal(bank.centroids, before)
    assert "collapse guard" in caplog.text
    rel, bank = merge_world("video", max_merge_fraction=0.5)  # 1 of 3 ids: allowed
    assert rel.end_window(LABELS, bank, 0).stats["merge_rejected"] == 0


def test_stale_ids_do_not_merge():
    rel, bank = merge_world("video", merge_max_age=5)
    judge(rel, bank, [4, 5], [e(4), e(4)], step=8)  # id 1 seen at step 8, id 2 never
    assert rel.end_window(LABELS, bank, 10).stats["ids_merged"] == 0
    judge(rel, bank, [8, 9], [e(4), e(4)], step=12)
    assert rel.end_window(LABELS, bank, 13).stats["ids_merged"] == 1  # both seen within 5 steps


def test_uninitialised_centroid_uses_the_other_images_of_the_batch():
    rel, bank = relabeler(), bank_with([e(0), None, e(2), None])
    out = judge(rel, bank, [4, 5, 6, 7, 12], [e(1), e(1), e(1), e(5), e(5)])
    assert out.tolist() == [1, 1, 1, -1, 3]  # leave-one-out drops image 7; image 12 alone: not judged
    assert rel.end_window(np.where(np.arange(16) == 7, -1, LABELS), bank, 1).stats["images_judged"] == 4


def test_filter_threshold_follows_the_recent_own_similarities():
    rel, bank = relabeler(filter_mad=2.0, filter_history=8, filter_min_history=8, tau_filter=0.0), bank_with(AXES)
    good = [e(1, 5, 0.1), e(1, 5, 0.2), e(1, 5, 0.3), e(1, 5, 0.4)]
    assert judge(rel, bank, [4, 5, 6, 7], good).tolist() == [1] * 4
    assert math.isnan(rel.filter_threshold())  # 4 of the 8 similarities needed: no filter yet
    judge(rel, bank, [4, 5, 6, 7], good, step=1)
    threshold = rel.filter_threshold()
    assert 0.9 < threshold < 0.99  # median − 2 MAD of cosines 0.93-0.995, far above tau_filter
    out = judge(rel, bank, [4, 5, 6, 7], [e(1), e(1), e(1), e(1, 5, 0.6)], step=2)
    assert out.tolist() == [1, 1, 1, -1]  # cos 0.86: fine for tau_filter, an outlier here


def simulate(rel: OnlineRelabeler, bank: CentroidBank, labels: np.ndarray, steps: range, truth, seed: int):
    """A trainer's loop: judge, apply, update the bank, end windows. Returns outputs and stats."""
    rng = np.random.default_rng(seed)
    protos = np.random.default_rng(99).standard_normal((truth.max() + 2, 16)).astype(np.float32)
    outputs, windows = [], []
    for step in steps:
        ids = rng.choice(np.unique(labels[labels >= 0]), 4, replace=False)
        index = np.concatenate([rng.choice(np.flatnonzero(labels == i), 4) for i in ids])
        x = protos[truth[index]] + 0.6 * rng.standard_normal((len(index), 16)).astype(np.float32)
        f = torch.nn.functional.normalize(torch.from_numpy(x), dim=1)
        out = rel.judge(index, f, labels[index], bank, step)
        labels[index] = out
        bank.update(f, torch.from_numpy(out), 0.2)
        outputs.append(out)
        if rel.window_due(step):
            result = rel.end_window(labels, bank, step, truth)
            labels[:] = result.labels
            windows.append({k: v for k, v in result.stats.items() if "seconds" not in k})
    return outputs, windows


def random_world(n: int = 400, num_ids: int = 40):
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(num_ids), n // num_ids)
    persons = np.arange(num_ids) // 2  # two pseudo ids per person (broken tracks)
    truth = persons[labels].copy()
    noisy = rng.random(n) < 0.1
    truth[noisy] = rng.integers(-1, num_ids // 2, int(noisy.sum()))
    videos = labels // 4  # ids 4v..4v+3 in video v: a person's two ids share a video
    return labels, np.ones(n, bool), videos, truth


def fresh(world, **kw):
    labels, single, videos, _ = world
    c = cfg(warmup=3, every=5, merge_scope="video", tau_merge=0.8, tau_relabel=0.6, **kw)
    return OnlineRelabeler(labels, single, videos, int(labels.max()) + 1, c), CentroidBank(40, 16, "fp32")


def same(a, b) -> bool:
    return a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b))


def test_same_inputs_give_the_same_decisions():
    world = random_world()
    runs = []
    for _ in range(2):
        rel, bank = fresh(world, filter_mad=3.0)
        runs.append(simulate(rel, bank, world[0].copy(), range(25), world[3], seed=1))
    (out_a, win_a), (out_b, win_b) = runs
    assert all(np.array_equal(a, b) for a, b in zip(out_a, out_b, strict=True))
    assert [k for k in win_a[0]] == [k for k in win_b[0]]
    assert all(same(a[k], b[k]) for a, b in zip(win_a, win_b, strict=True) for k in a)
    assert sum(w["images_judged"] for w in win_a) > 0


def test_state_dict_round_trip_continues_identically():
    world = random_world()
    rel, bank = fresh(world, filter_mad=3.0)
    labels = world[0].copy()
    simulate(rel, bank, labels, range(11), world[3], seed=2)  # mid-window after the step-8 window
    buffer = io.BytesIO()
    torch.save({"relabel": rel.state_dict(), "bank": bank.state_dict()}, buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    twin, twin_bank = fresh(world, filter_mad=3.0)
    twin.load_state_dict(state["relabel"])
    twin_bank.load_state_dict(state["bank"])
    out_a, win_a = simulate(rel, bank, labels.copy(), range(11, 30), world[3], seed=3)
    out_b, win_b = simulate(twin, twin_bank, labels.copy(), range(11, 30), world[3], seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(out_a, out_b, strict=True))
    assert len(win_a) == len(win_b) >= 3
    assert all(same(a[k], b[k]) for a, b in zip(win_a, win_b, strict=True) for k in a)


def test_precision_scores_each_action_against_the_truth():
    truth = np.array([9, 9, 9, 9, 1, 1, 1, -1, 2, 2, 2, 2, 3, 3, 3, 3])  # image 7 is junk
    rel, bank = relabeler(), bank_with(AXES)
    out = judge(rel, bank, [4, 5, 6, 7], [e(1), e(1), e(1), e(5)])  # junk filtered: right
    labels = LABELS.copy()
    labels[[4, 5, 6, 7]] = out
    stats = rel.end_window(labels, bank, 1, truth).stats
    assert list(stats) == [*STAT_KEYS, *TRUTH_KEYS]  # one CSV header for every window
    assert stats["filter_precision"] == 1.0 and math.isnan(stats["reassign_precision"])
    assert stats["purity_before"] == pytest.approx(11 / 12) and stats["purity"] == 1.0  # junk counts impure

    truth[7] = 1  # image 7 is person 1 after all: moving it to id 2 is wrong
    rel, bank = relabeler(), bank_with(AXES)
    out = judge(rel, bank, [4, 5, 6, 7], [e(1), e(1), e(1), e(2)])
    labels = LABELS.copy()
    labels[[4, 5, 6, 7]] = out
    assert out[3] == 2
    stats = rel.end_window(labels, bank, 1, truth).stats
    assert stats["reassign_precision"] == 0.0 and math.isnan(stats["filter_precision"])


def test_merge_precision_from_the_majority_person_of_each_id():
    rel, bank = merge_world("video")
    truth = np.repeat([9, 4, 4, 5], 4)  # ids 1 and 2 are one person
    assert rel.end_window(LABELS, bank, 0, truth).stats["merge_precision"] == 1.0
    rel, bank = merge_world("video")
    truth = np.repeat([9, 4, 6, 5], 4)  # ... or two
    assert rel.end_window(LABELS, bank, 0, truth).stats["merge_precision"] == 0.0
    assert list(rel.end_window(LABELS, bank, 1).stats) == list(STAT_KEYS)  # no truth, no precision


def test_precision_helpers():
    labels = np.array([0, 0, 0, 1, 1, 2, -1])
    truth = np.array([5, 5, 6, 7, 8, -1, 5])
    majority = majority_true_id(labels, truth, 4)
    assert majority.tolist() == [5, 7, -1, -1]  # tie 7/8 -> 7; id 2 only junk; id 3 empty
    assert filter_precision(np.array([0, 0, 1]), np.array([6, 5, -1]), majority) == pytest.approx(2 / 3)
    assert reassign_precision(np.array([0, 1]), np.array([5, 8]), majority) == 0.5
    assert merge_precision(np.array([0, 0, 0, 3]), majority) == 0.0  # 1->0: 7 vs 5; 2->0: junk
    assert math.isnan(reassign_precision(np.array([], np.int64), np.array([], np.int64), majority))


def test_judge_cost_is_flat_in_images_and_ids():
    """Smoke check at 2M images x 200k ids: a step gathers rows, never scans N or C.

    One pass over the (C, D) bank (e.g. scoring every centroid) costs tens of ms here, a
    sort of the N labels more; the judge's median step stays around a millisecond.
    """
    n, c, dim = 2_000_000, 200_000, 64
    labels = np.arange(n, dtype=np.int64) % c
    videos = labels // 10
    rel = OnlineRelabeler(labels, np.ones(n, bool), videos, c, cfg(filter_mad=4.0, filter_min_history=64, topk=8))
    rng = np.random.default_rng(0)
    rel.neighbours[:] = rng.integers(0, c, rel.neighbours.shape)  # as if a window had run
    bank = CentroidBank(c, dim, "fp16")
    bank.centroids.copy_(torch.nn.functional.normalize(torch.randn(c, dim), dim=1).half())
    bank.counts.fill_(1)
    times, threads = [], torch.get_num_threads()
    torch.set_num_threads(1)  # tiny ops: on a busy 2-core machine a 2-thread pool measures the scheduler
    try:
        for step in range(12):
            ids = rng.integers(0, c, 16)
            index = np.repeat(ids, 4) + c * rng.integers(0, n // c, 64)
            f = torch.nn.functional.normalize(torch.randn(64, dim), dim=1)
            start = time.perf_counter()
            out = rel.judge(index, f, labels[index], bank, step)
            times.append(time.perf_counter() - start)
            assert out.shape == (64,)
    finally:
        torch.set_num_threads(threads)
    assert np.median(times) < 0.02 and max(times[1:]) < 0.25, times


def test_merge_threshold_rises_with_a_concentrated_embedding():
    from dynamix.relabel.online import merge_threshold

    spread = np.array([0.2, 0.4, 0.5, 0.6, 0.95], dtype=np.float32)
    concentrated = np.array([0.93, 0.95, 0.96, 0.97, 0.99], dtype=np.float32)
    assert merge_threshold(spread, 0.9, 1.0) == pytest.approx(0.9)  # the floor binds
    # early in training every cosine is high: an edge must stand out from its kind
    assert merge_threshold(concentrated, 0.9, 1.0) == pytest.approx(0.96 + 0.01)
    assert merge_threshold(concentrated, 0.9, None) == pytest.approx(0.9)
    assert merge_threshold(np.empty(0, np.float32), 0.9, 1.0) == pytest.approx(0.9)
