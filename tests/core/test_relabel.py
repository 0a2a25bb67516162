"""Relabeling Module on hand-made features whose right answer is known."""

import faiss
import numpy as np
import pytest
import torch

from dynamix.centroids import CentroidBank
from dynamix.relabel import (
    apply_mapping,
    faiss_index,
    filter_and_relabel,
    knn_search,
    label_quality,
    merge_components,
)

DIM = 8


def near(axis: int, n: int, rng: np.random.Generator) -> np.ndarray:
    x = np.zeros((n, DIM), np.float32)
    x[:, axis] = 1.0
    x += 0.05 * rng.standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def world():
    """(features, labels, true ids, single-camera mask) with one known fix of each kind.

    id 0: multi-camera, person P, plus one odd image that must stay untouched;
    id 1: single-camera, person A, plus a junk crop (true −1) and an image of person B;
    id 2: person B; ids 3 and 4: person C in two videos; id 5: person D;
    id 6: single-camera, same direction as multi-camera id 0 (must not merge with it).
    """
    rng = np.random.default_rng(0)
    parts = [  # (features, label, true id)
        (near(0, 4, rng), 0, 100),
        (near(6, 1, rng), 0, 100),
        (near(1, 5, rng), 1, 1),
        (near(5, 1, rng), 1, -1),
        (near(2, 1, rng), 1, 2),
        (near(2, 4, rng), 2, 2),
        (near(3, 4, rng), 3, 3),
        (near(3, 4, rng), 4, 3),
        (near(4, 3, rng), 5, 4),
        (near(0, 3, rng), 6, 5),
    ]
    feats = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([np.full(len(p[0]), p[1]) for p in parts])
    true = np.concatenate([np.full(len(p[0]), p[2]) for p in parts])
    single = np.array([False, True, True, True, True, True, True])
    return feats, labels, true, single


OUTLIER, MISLABELED, MULTI_ODD = 10, 11, 4  # row positions in world()


def bank_for(feats: np.ndarray, labels: np.ndarray, num_ids: int = 7) -> CentroidBank:
    bank = CentroidBank(num_ids, DIM, dtype="fp16")
    bank.init_from(torch.from_numpy(feats), torch.from_numpy(labels))
    bank.finish_init()
    return bank


def test_knn_search_matches_brute_force():
    rng = np.random.default_rng(1)
    base, queries = rng.standard_normal((50, DIM)), rng.standard_normal((7, DIM))
    sims, idx = knn_search(torch.from_numpy(base), queries, k=5)
    b = base / np.linalg.norm(base, axis=1, keepdims=True)
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    full = q @ b.T
    assert np.array_equal(idx, np.argsort(-full, axis=1)[:, :5])
    assert np.allclose(sims, np.sort(full, axis=1)[:, ::-1][:, :5], atol=1e-5)
    assert knn_search(base[:2], queries, k=5)[1].shape == (7, 2)  # k clipped to the base


def test_knn_search_ivf_finds_the_true_neighbour_and_leaves_inputs_alone():
    """nlist > 0 (IVF, for 100k+ banks) finds each query's own cluster centre."""
    rng = np.random.default_rng(2)
    centres = rng.standard_normal((400, 16)).astype(np.float32)
    queries = centres[:50] + 0.05 * rng.standard_normal((50, 16)).astype(np.float32)
    before = queries.copy()
    sims, idx = knn_search(centres, queries, k=3, nlist=8, nprobe=8)  # 400 >= 39 * 8: IVF
    assert np.array_equal(idx[:, 0], np.arange(50)) and np.all(sims[:, 0] > 0.95)
    assert np.array_equal(queries, before)
    owned = queries.copy()
    _, idx2 = knn_search(centres, owned, k=3, nlist=8, nprobe=8, overwrite_queries=True)
    assert np.array_equal(idx2, idx)
    assert np.allclose(np.linalg.norm(owned, axis=1), 1.0, atol=1e-5)  # normalised in place


def test_faiss_index_falls_back_to_cpu():
    index = faiss_index(DIM, use_gpu=True)  # no GPU here: an exact CPU index
    assert isinstance(index, faiss.IndexFlatIP) and index.ntotal == 0


def test_filter_and_relabel_fixes_exactly_the_known_images():
    feats, labels, _, single = world()
    bank = bank_for(feats, labels)
    out = filter_and_relabel(
        feats,
        labels,
        bank.centroids,
        single,
        tau_filter=0.5,
        tau_relabel=0.7,
        margin=0.1,
        topk=3,
        candidate_mask=bank.initialized,
    )
    assert np.flatnonzero(out.filtered).tolist() == [OUTLIER]
    assert np.flatnonzero(out.relabeled).tolist() == [MISLABELED]
    expected = labels.copy()
    expected[OUTLIER], expected[MISLABELED] = -1, 2
    assert np.array_equal(out.labels, expected)
    assert not out.considered[:5].any()  # multi-camera images are never judged
    assert out.labels[MULTI_ODD] == 0
    assert out.s_own[OUTLIER] < 0.5 and out.s_best[MISLABELED] > 0.9


def test_filter_ignores_ids_without_centroid_and_keeps_filtered():
    feats, labels, _, single = world()
    bank = bank_for(feats[labels != 5], labels[labels != 5])  # id 5 never seen
    labels = labels.copy()
    labels[0] = -1
    out = filter_and_relabel(
        feats,
        labels,
        bank.centroids,
        single,
        candidate_mask=bank.initialized,
        tau_filter=0.99,
        tau_relabel=0.999,
        margin=0.0,
    )
    assert not out.considered[labels == 5].any()
    assert out.labels[0] == -1


def test_poor_fit_without_margin_is_filtered_not_kept():
    cents = np.eye(2, DIM)  # single-camera ids 0 and 1, given as a plain array
    feats = np.zeros((1, DIM))
    feats[0, :2] = 0.45, 0.55  # s_own 0.63 < 0.7; s_best 0.77 ≥ 0.7 but < s_own + 0.2
    out = filter_and_relabel(feats, np.array([0]), cents, np.ones(2, bool), tau_filter=0.7, tau_relabel=0.7, margin=0.2)
    assert out.labels.tolist() == [-1] and out.filtered.all() and not out.relabeled.any()


def test_mutual_neighbours_stop_chaining():
    # top-1 lists of A, B, C at 0°, 20°, 45°: A–B 0.94, B–C 0.91, A–C 0.71
    ids, rows, cols = np.array([0, 1, 2]), np.array([0, 1, 2]), np.array([1, 0, 1])
    chained = merge_components(3, ids, rows, cols)
    mutual = merge_components(3, ids, rows, cols, mutual=True)
    assert chained.mapping.tolist() == [0, 0, 0] and chained.largest_group == 3
    assert mutual.mapping.tolist() == [0, 0, 2] and (mutual.ids_merged, mutual.num_edges) == (1, 1)


def test_apply_mapping_keeps_filtered():
    assert apply_mapping(np.array([3, -1, 4, 0]), np.array([0, 1, 2, 3, 3])).tolist() == [
        3,
        -1,
        3,
        0,
    ]


def test_label_quality_by_hand():
    true = np.array([7, 7, 8, 8, 9])
    assert label_quality(np.array([2, 2, 0, 0, 5]), true) == pytest.approx(
        {"purity": 1.0, "fragmentation": 1.0, "ari": 1.0}
    )
    # label 0 mixes persons 7, 7, 8 → majority 2 of 3; person 8 split over labels 0 and 1
    q = label_quality(np.array([0, 0, 0, 1, -1]), true)
    assert q["purity"] == pytest.approx(3 / 4) and q["fragmentation"] == pytest.approx(1.5)
    # a kept junk image is impure; a filtered one does not count
    assert label_quality(np.array([0, 0, 0]), np.array([7, 7, -1]))["purity"] == pytest.approx(2 / 3)
    assert label_quality(np.array([0, 0, -1]), np.array([7, 7, -1]))["purity"] == 1.0


def test_mad_filter_drops_outliers_where_a_fixed_threshold_drops_nothing():
    """A concentrated space (every cosine near 1, as early in training): tau_filter 0.5
    filters nothing, the robust rule median − z·MAD finds exactly the planted outliers."""
    rng = np.random.default_rng(0)
    base = np.zeros((1, DIM), np.float32)
    base[0, 0] = 1.0
    feats = base + 0.02 * rng.standard_normal((40, DIM)).astype(np.float32)
    feats[[5, 17]] += 0.4 * np.eye(DIM, dtype=np.float32)[[1, 2]]  # still cosine ~0.93
    feats /= np.linalg.norm(feats, axis=1, keepdims=True)
    labels = np.zeros(40, np.int64)
    cents = base.repeat(2, 0)  # id 0 and an unused id 1
    kw = dict(tau_filter=0.5, tau_relabel=0.7, margin=0.1, topk=1)
    fixed = filter_and_relabel(feats, labels, cents, np.ones(2, bool), **kw)
    assert not fixed.filtered.any() and fixed.filter_threshold == 0.5
    robust = filter_and_relabel(feats, labels, cents, np.ones(2, bool), filter_mad=20.0, **kw)
    assert np.flatnonzero(robust.filtered).tolist() == [5, 17]
    s = robust.s_own
    mad = np.median(np.abs(s - np.median(s)))
    assert robust.filter_threshold == pytest.approx(np.median(s) - 20.0 * mad, rel=1e-6)
    assert 0.9 < robust.filter_threshold < 1.0


def test_reassign_off_only_filters():
    feats, labels, _, single = world()
    bank = bank_for(feats, labels)
    out = filter_and_relabel(
        feats,
        labels,
        bank.centroids,
        single,
        reassign=False,
        candidate_mask=bank.initialized,
        tau_filter=0.5,
        tau_relabel=0.7,
        margin=0.1,
        topk=3,
    )
    assert not out.relabeled.any()
    # the image of another person fits its own id poorly: filtered instead of moved
    assert np.flatnonzero(out.filtered).tolist() == [OUTLIER, MISLABELED]
    assert out.labels[MISLABELED] == -1
