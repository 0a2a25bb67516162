"""Data Sampling Module: batch composition, camera spread, matching, aging, resume, relabels."""

import io
import math

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from dynamix.centroids import CentroidBank
from dynamix.errors import DynamixError
from dynamix.sampling import (
    MULTI,
    SINGLE,
    IdCycle,
    MixedBatchSampler,
    match_nearest,
    pick_images,
    video_spread_order,
)
from dynamix.sampling import sampler as sampler_module


def world(n_mc=8, n_sc=40, mc_imgs=12, mc_cams=6, sc_imgs=5, n_videos=10, seed=0):
    """(labels, camids, single) (N,): ids 0..n_mc-1 multi-camera, then single-camera ids.

    Multi-camera id i has ``mc_imgs`` images over ``mc_cams`` cameras; single-camera id j
    has ``sc_imgs`` images in video ``mc_cams + j % n_videos`` (its camera).
    """
    rng = np.random.default_rng(seed)
    mc_lab = np.repeat(np.arange(n_mc), mc_imgs)
    mc_cam = np.tile(np.arange(mc_imgs) % mc_cams, n_mc)
    sc_ids = np.arange(n_mc, n_mc + n_sc)
    sc_lab = np.repeat(sc_ids, sc_imgs)
    sc_cam = mc_cams + sc_lab % n_videos
    labels = np.concatenate([mc_lab, sc_lab])
    camids = np.concatenate([mc_cam, sc_cam])
    single = np.r_[np.zeros(len(mc_lab), bool), np.ones(len(sc_lab), bool)]
    perm = rng.permutation(len(labels))  # images in no particular order, as in a manifest
    return labels[perm], camids[perm], single[perm]


def random_bank(num_ids, dim=16, seed=0):
    bank = CentroidBank(num_ids, dim, dtype="fp16")
    gen = torch.Generator().manual_seed(seed)
    bank.centroids.copy_(torch.nn.functional.normalize(torch.randn(num_ids, dim, generator=gen)))
    bank.counts.fill_(1)
    return bank


def make(labels, camids, single, **kw):
    kw = {"p_m": 3, "p_s": 2, "k": 4, "seed": 0, **kw}
    if kw.get("matching", True) and "centroids" not in kw:
        kw["centroids"] = random_bank(int(labels.max()) + 1)
    return MixedBatchSampler(labels, camids, single, **kw)


def draw(sampler, n):
    return [sampler.next_batch() for _ in range(n)]


def ids_of(batch, labels, k):
    return labels[np.asarray(batch)].reshape(-1, k)[:, 0]


def test_batch_composition_is_exact():
    labels, camids, single = world()
    s = make(labels, camids, single, p_m=3, p_s=2, k=4)
    assert s.batch_size == 20
    for batch in draw(s, 40):
        batch = np.asarray(batch)
        assert len(batch) == 20
        per_id = labels[batch].reshape(5, 4)
        assert (per_id == per_id[:, :1]).all()  # k consecutive images per id
        assert len(set(per_id[:, 0])) == 5  # ids distinct within the batch
        assert not single[batch[:12]].any() and single[batch[12:]].all()
        assert s.groups(batch).tolist() == [MULTI] * 12 + [SINGLE] * 8


def test_iterates_endlessly_as_batch_sampler():
    labels, camids, single = world()
    s = make(labels, camids, single)
    it = iter(s)
    batches = [next(it) for _ in range(500)]  # far beyond one pass over 8 + 40 ids
    assert all(isinstance(b, list) and len(b) == 20 for b in batches)
    assert s.position == 500


def test_multi_camera_ids_cycle_in_passes():
    labels, camids, single = world(n_mc=9)
    s = make(labels, camids, single, p_m=3)
    seen = np.concatenate([ids_of(b, labels, 4)[:3] for b in draw(s, 6)])
    assert np.bincount(seen, minlength=9)[:9].tolist() == [2] * 9  # each id once per pass


def test_id_cycle_keeps_ids_distinct_across_pass_boundary():
    cycle, rng = IdCycle(np.arange(7)), np.random.default_rng(0)
    drawn = [cycle.take(3, rng) for _ in range(70)]  # 7 is not a multiple of 3
    assert all(len(set(d)) == 3 for d in drawn)
    counts = np.bincount(np.concatenate(drawn))
    assert counts.max() - counts.min() <= 1  # once per pass, boundaries included


def test_camera_aware_choice_spreads_over_cameras():
    rng = np.random.default_rng(0)
    camids = np.repeat(np.arange(6), 4)  # 24 images: 4 per camera
    images = np.arange(24)
    for _ in range(50):
        picked = pick_images(images, camids, 4, rng)
        assert len(set(camids[picked])) == 4  # ≥ k cameras: k distinct cameras
        assert len(set(picked)) == 4
    two_cams = np.array([0, 0, 0, 0, 1, 1, 1])
    for _ in range(50):
        picked = pick_images(np.arange(7), two_cams, 4, rng)
        assert sorted(two_cams[picked]) == [0, 0, 1, 1]  # round-robin, no image repeated
        assert len(set(picked)) == 4


def test_camera_choice_is_random_among_cameras():
    rng = np.random.default_rng(0)
    camids = np.repeat(np.arange(6), 3)
    cams = [tuple(sorted(camids[pick_images(np.arange(18), camids, 2, rng)])) for _ in range(200)]
    assert len(set(cams)) == 15  # every pair of the 6 cameras shows up


def test_replacement_only_for_ids_with_fewer_than_k_images():
    rng = np.random.default_rng(0)
    camids = np.zeros(13, dtype=np.int64)
    camids[11] = 1
    picked = pick_images(np.array([10, 11, 12]), camids, 5, rng)
    assert len(picked) == 5 and set(picked) == {10, 11, 12}
    big = pick_images(np.arange(10_000), np.arange(10_000) % 7, 4, rng)  # thinned: O(k)
    assert len(set(big)) == 4 and len(set(big % 7)) == 4


def test_sampler_gives_each_multi_camera_id_distinct_cameras():
    labels, camids, single = world(mc_imgs=12, mc_cams=6)
    s = make(labels, camids, single, k=4)
    for batch in draw(s, 20):
        cams = camids[np.asarray(batch[:12])].reshape(3, 4)
        assert all(len(set(row)) == 4 for row in cams)


def test_video_spread_order_interleaves_videos():
    ids = np.arange(200)
    videos = ids % 20  # 20 videos of 10 ids each
    order = video_spread_order(ids, videos, np.random.default_rng(3))
    assert sorted(order.tolist()) == ids.tolist()
    for block in order.reshape(10, 20):  # j-th id of every video lies in block j
        assert len(set(videos[block])) == 20


def hand_made_bank(num_ids, directions, dim=8):
    """Bank whose id ``i`` points along axis ``directions[i]`` (plus a little noise)."""
    rng = np.random.default_rng(0)
    c = np.zeros((num_ids, dim), np.float32)
    c[np.arange(num_ids), directions] = 1.0
    c += 0.05 * rng.standard_normal(c.shape).astype(np.float32)
    return torch.nn.functional.normalize(torch.from_numpy(c), dim=1)


def test_matching_takes_the_nearest_single_camera_ids():
    # ids 0, 1 multi-camera along axis 0; single-camera A=2, B=3 along axis 0, C=4, D=5 axis 1
    labels, camids, single = world(n_mc=2, n_sc=4, n_videos=4)
    bank = hand_made_bank(6, [0, 0, 0, 0, 1, 1])
    firsts = set()
    for seed in range(10):
        s = make(labels, camids, single, p_m=2, p_s=2, window=4, centroids=bank, seed=seed)
        assert sorted(ids_of(s.next_batch(), labels, 4)[2:]) == [2, 3]
        r = make(labels, camids, single, p_m=2, p_s=2, window=4, matching=False, seed=seed)
        firsts.add(tuple(sorted(ids_of(r.next_batch(), labels, 4)[2:])))
    assert len(firsts) > 1  # random mixing: not always A, B


def test_matching_is_systematic_and_random_mixing_is_not():
    # 10 multi-camera ids on 10 axes; 100 single-camera ids, 10 per axis
    n_mc, n_sc = 10, 100
    labels, camids, single = world(n_mc=n_mc, n_sc=n_sc, n_videos=20)
    axis = np.r_[np.arange(n_mc), np.arange(n_sc) % n_mc]
    bank = hand_made_bank(n_mc + n_sc, axis, dim=n_mc)

    def hit_rate(matching):
        s = make(labels, camids, single, p_m=2, p_s=2, window=16, centroids=bank, matching=matching)
        hits = []
        for batch in draw(s, 200):
            ids = ids_of(batch, labels, 4)
            hits += [axis[i] in set(axis[ids[:2]]) for i in ids[2:]]
        return np.mean(hits)

    assert hit_rate(True) > 0.6
    assert hit_rate(False) < 0.35  # chance level is 2/10


def test_match_nearest_shares_candidates_round_robin():
    anchors = np.array([[1.0, 0.0], [0.0, 1.0]])
    candidates = np.array([[1.0, 0.05], [1.0, 0.1], [0.1, 1.0], [-1.0, 0.0]])
    # anchor 0 takes its best (0), anchor 1 takes its best (2), not the second-best of 0
    assert match_nearest(candidates, anchors, 2).tolist() == [0, 2]
    assert match_nearest(candidates, anchors, 3).tolist() == [0, 2, 1]
    zero = np.zeros((3, 2))  # no centroids yet: queue order
    assert match_nearest(zero, anchors, 2).tolist() == [0, 1]


def test_aging_visits_every_single_camera_id_within_the_bound():
    # one multi-camera direction; half the single-camera ids look like it, half never do
    n_mc, n_sc = 4, 60
    labels, camids, single = world(n_mc=n_mc, n_sc=n_sc)
    axis = np.r_[np.zeros(n_mc, int), np.where(np.arange(n_sc) < 30, 0, 1)]
    bank = hand_made_bank(n_mc + n_sc, axis)
    s = make(labels, camids, single, p_m=2, p_s=2, window=16, max_wait=10, centroids=bank)
    last_seen = {}
    bound = math.ceil(n_sc / 2) + s.visit_bound
    for t, batch in enumerate(draw(s, 5 * bound)):
        for pid in ids_of(batch, labels, 4)[2:]:
            last_seen.setdefault(pid, []).append(t)
        assert len(s.queue) <= s.window + s.chunk
        assert (s.queue.age < s.max_wait + math.ceil(s.window / s.p_s) + 1).all()
    assert set(last_seen) == set(range(n_mc, n_mc + n_sc))
    assert max(times[0] for times in last_seen.values()) < bound
    gaps = [np.diff([-1, *times]).max() for times in last_seen.values()]
    assert max(gaps) <= 2 * bound  # and again in every later pass


def test_same_seed_same_batches_different_seed_different():
    labels, camids, single = world()
    bank = random_bank(48)
    a = draw(make(labels, camids, single, centroids=bank, seed=7), 30)
    b = draw(make(labels, camids, single, centroids=bank, seed=7), 30)
    c = draw(make(labels, camids, single, centroids=bank, seed=8), 30)
    assert a == b
    assert a != c


def round_trip(state):
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)  # the state holds only safe types


@pytest.mark.parametrize("matching", [True, False])
def test_state_dict_round_trip_continues_identically(matching):
    labels, camids, single = world(n_mc=7, n_sc=23)  # short passes: boundaries inside the run
    bank = random_bank(30)
    kw = dict(p_m=3, p_s=2, k=4, window=6, chunk=5, centroids=bank, matching=matching)
    full = draw(make(labels, camids, single, seed=1, **kw), 60)
    first = make(labels, camids, single, seed=1, **kw)
    assert draw(first, 25) == full[:25]
    state = round_trip(first.state_dict())
    resumed = make(labels, camids, single, seed=99, **kw)  # seed is overwritten by the state
    resumed.load_state_dict(state)
    assert draw(resumed, 35) == full[25:]


def test_state_dict_replays_batches_drawn_but_not_consumed():
    labels, camids, single = world(n_mc=7, n_sc=23)
    kw = dict(window=6, chunk=5, centroids=random_bank(30))
    full = draw(make(labels, camids, single, seed=1, **kw), 40)
    first = make(labels, camids, single, seed=1, **kw)
    draw(first, 24)  # a DataLoader prefetched 4 batches beyond the 20 trained on
    state = round_trip(first.state_dict(consumed=20))
    resumed = make(labels, camids, single, seed=1, **kw)
    resumed.load_state_dict(state)
    assert resumed.position == 20
    assert draw(resumed, 20) == full[20:]
    with pytest.raises(DynamixError, match="consumed"):
        first.state_dict(consumed=25)


class IndexDataset(Dataset):
    def __len__(self):
        return 10**9

    def __getitem__(self, index):
        return index


def test_resume_through_prefetching_dataloader_with_live_centroids():
    """Matching reads the bank when a batch is drawn, which a DataLoader does ahead."""
    labels, camids, single = world(n_mc=7, n_sc=23)
    lab_t = torch.from_numpy(labels)

    def run(steps, sampler, bank, start=0):
        loader = DataLoader(IndexDataset(), batch_sampler=sampler, num_workers=1, prefetch_factor=3)
        out = []
        for step, idx in zip(range(start, steps), loader, strict=False):
            out.append(idx.tolist())
            raw = torch.sin(idx[:, None] * (step + 1.0) * torch.arange(1, 17))  # (B, 16)
            feats = torch.nn.functional.normalize(raw, dim=1)
            bank.update(feats, lab_t[idx], momentum=0.5)
        return out

    kw = dict(window=6, chunk=5, seed=3)
    bank = random_bank(30)
    full = run(16, make(labels, camids, single, centroids=bank, **kw), bank)
    bank = random_bank(30)
    first = make(labels, camids, single, centroids=bank, **kw)
    head = run(8, first, bank)
    state = round_trip({"sampler": first.state_dict(consumed=8), "bank": bank.state_dict()})
    bank = random_bank(30, seed=5)
    bank.load_state_dict(state["bank"])
    resumed = make(labels, camids, single, centroids=bank, **kw)
    resumed.load_state_dict(state["sampler"])
    assert head + run(16, resumed, bank, start=8) == full


def test_load_state_refuses_other_labels_or_settings():
    labels, camids, single = world()
    s = make(labels, camids, single, matching=False)
    draw(s, 3)
    state = s.state_dict()
    other = labels.copy()
    other[0] = -1
    with pytest.raises(DynamixError, match="other labels"):
        make(other, camids, single, matching=False).load_state_dict(state)
    with pytest.raises(DynamixError, match="same sampler settings"):
        make(labels, camids, single, matching=False, k=3).load_state_dict(state)


def test_update_labels_follows_filtering_and_merging():
    labels, camids, single = world(n_mc=6, n_sc=60)
    s = make(labels, camids, single, p_m=2, p_s=3, window=10, chunk=6)
    draw(s, 7)  # mid-pass, with a filled queue
    new = labels.copy()
    queued = s.queue.ids.copy()
    gone, merged_into = int(queued[0]), int(queued[1])  # both waiting in the queue now
    new[new == gone] = merged_into  # merge: `gone` folds into `merged_into`
    vanished = int(s.queue.cycle.remaining[0])
    new[new == vanished] = -1  # every image of an id filtered out
    filtered = np.flatnonzero(single)[::3]  # plus a third of all single-camera images
    new[filtered] = -1
    s.update_labels(new)
    assert gone not in s.queue.ids and vanished not in s.queue.ids
    assert gone not in s.queue.cycle.remaining and vanished not in s.queue.cycle.remaining
    assert s.queue.in_queue.sum() == len(s.queue)
    seen = set()
    for batch in draw(s, 60):
        batch = np.asarray(batch)
        assert (new[batch] >= 0).all()
        per_id = new[batch].reshape(-1, 4)
        assert (per_id == per_id[:, :1]).all()
        seen |= set(per_id[:, 0])
    assert gone not in seen and vanished not in seen and merged_into in seen


def test_update_labels_rejects_what_cannot_be_sampled():
    labels, camids, single = world(n_mc=4, n_sc=10)
    s = make(labels, camids, single, p_m=3, p_s=2)
    before = s.index
    new = labels.copy()
    new[new == 0] = -1
    new[new == 1] = -1  # 2 multi-camera ids left, p_m = 3
    with pytest.raises(DynamixError, match="p_m=3"):
        s.update_labels(new)
    assert s.index is before  # nothing changed
    with pytest.raises(DynamixError, match="one per image"):
        s.update_labels(labels[:-1])


def test_multi_camera_only_ablation():
    labels, camids, single = world()
    mc = ~single
    s = make(labels[mc], camids[mc], single[mc], p_m=4, single_camera=False, matching=True)
    for batch in draw(s, 20):
        assert len(batch) == 16 and s.groups(batch).tolist() == [MULTI] * 16
    s = make(labels, camids, single, p_m=4, single_camera=False)  # single-camera data ignored
    assert not any(single[b].any() for b in draw(s, 20))


@pytest.mark.parametrize(
    ("change", "kwargs", "message"),
    [
        ("none", {"p_m": 9}, "8 multi-camera ids"),
        ("no_single", {}, "0 single-camera ids"),
        ("none", {"p_s": 41}, "40 single-camera ids"),
        ("none", {"k": 13}, "k=13 exceeds"),
        ("none", {"p_s": 0}, "p_s ≥ 1"),
        ("none", {"window": 1}, "window=1"),
        ("none", {"matching": True, "centroids": None}, "needs the centroid bank"),
        ("mixed", {}, "both multi- and single-camera"),
        ("short", {}, "disagree in length"),
        ("bank", {"centroids": random_bank(10)}, "centroid bank has 10 rows"),
    ],
)
def test_clear_errors(change, kwargs, message):
    labels, camids, single = world()
    if change == "no_single":
        labels, camids, single = labels[~single], camids[~single], single[~single]
    elif change == "mixed":
        single = single.copy()
        single[np.flatnonzero(labels == 0)[0]] = True
    elif change == "short":
        camids = camids[:-1]
    with pytest.raises(DynamixError, match=message):
        make(labels, camids, single, **kwargs)


def test_per_batch_work_does_not_grow_with_the_number_of_ids(monkeypatch):
    """Refills read fixed-size chunks; passes are rebuilt once per pass, not per batch."""
    spread_calls = []
    original = sampler_module.IdCycle._new_pass

    def counting_new_pass(self, rng):
        spread_calls.append(len(self.ids))
        return original(self, rng)

    monkeypatch.setattr(sampler_module.IdCycle, "_new_pass", counting_new_pass)
    structure = {}
    for n_sc in (1_000, 200_000):
        spread_calls.clear()
        labels, camids, single = world(n_mc=50, n_sc=n_sc, sc_imgs=2, n_videos=500)
        s = make(labels, camids, single, p_m=4, p_s=4, k=2, window=32, chunk=16)
        takes = []
        take = s.queue.cycle.take
        s.queue.cycle.take = lambda n, rng, take=take, takes=takes: takes.append(n) or take(n, rng)
        lengths = []
        for _ in range(100):
            s.next_batch()
            lengths.append(len(s.queue))
        structure[n_sc] = (sorted(set(takes)), max(lengths), len(takes))
        assert set(takes) == {16}  # refills are chunk-sized whatever the number of ids
        assert max(lengths) <= 32 + 16
        sc_passes = [n for n in spread_calls if n == n_sc]
        assert len(sc_passes) == 1  # one pass covers these 100 batches
        assert len(spread_calls) - len(sc_passes) == math.ceil(100 * 4 / 50)  # mc passes
    assert structure[1_000] == structure[200_000]  # same work per batch at 200× the ids


def test_ids_per_video_groups_single_camera_ids_by_video():
    # 40 single-camera ids over 10 videos: 4 per video
    labels, camids, single = world(n_sc=40, n_videos=10)
    video_of = {int(labels[i]): int(camids[i]) for i in np.flatnonzero(single)}
    for matching in (True, False):
        s = make(labels, camids, single, p_m=3, p_s=4, k=4, ids_per_video=2, matching=matching)
        for batch in draw(s, 30):
            sc = ids_of(batch, labels, 4)[3:]
            assert len(set(sc.tolist())) == 4  # distinct
            videos = [video_of[int(i)] for i in sc]
            # two groups of two: (lead, companion) pairs share a video
            assert videos[0] == videos[1] and videos[2] == videos[3]


def test_ids_per_video_fills_from_the_queue_when_a_video_is_short():
    # one single-camera id per video: no companions exist, composition must still hold
    labels, camids, single = world(n_sc=12, n_videos=12)
    s = make(labels, camids, single, p_m=3, p_s=4, k=4, ids_per_video=3)
    for batch in draw(s, 20):
        sc = ids_of(batch, labels, 4)[3:]
        assert len(set(sc.tolist())) == 4
        assert single[np.asarray(batch)[12:]].all()


def test_ids_per_video_state_round_trip():
    labels, camids, single = world()
    a = make(labels, camids, single, p_s=4, ids_per_video=2)
    draw(a, 7)
    state = a.state_dict()
    b = make(labels, camids, single, p_s=4, ids_per_video=2)
    b.load_state_dict(state)
    assert draw(a, 10) == draw(b, 10)
    c = make(labels, camids, single, p_s=4, ids_per_video=1)
    with pytest.raises(DynamixError, match="sampler settings"):
        c.load_state_dict(state)
