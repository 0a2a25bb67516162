"""Mixed batch sampler at 1M images / 100k ids: time to first batch, per-batch cost, memory.

Measured: :class:`dynamix.sampling.MixedBatchSampler` with the params.yaml batch layout
(8 multi-camera + 8 single-camera ids × 4 images, matching on) over 2,000 multi-camera
ids (16 images each over 15 cameras) and 98,000 single-camera ids (about 10 images each,
five ids per video), with a 100k × 768 fp16 :class:`~dynamix.centroids.CentroidBank`.
Time to first batch covers construction (the CSR id index, the first video-spread pass)
and the first batch; then one epoch's worth of batches (images / batch size) is drawn
with RSS sampled along the way.

Baseline: a torchreid/fast-reid style identity sampler (``RandomIdentitySampler``) that
builds the whole epoch's index list in Python before it yields its first batch: a dict of
per-id lists, each shuffled and cut into k-chunks, then ids drawn until too few remain.
Only its time to first batch and memory are measured (the rest is list iteration).
"""

from __future__ import annotations

import copy
import random
import statistics
import time
from collections import defaultdict

import numpy as np
import torch
from bench_centroids import filled_bank
from common import Measurement, benchmark, peak_rss_gib, reset_peak_rss

P_M, P_S, K = 8, 8, 4
MC_IDS, MC_IMAGES, MC_CAMERAS, IDS_PER_VIDEO = 2_000, 16, 15, 5


def current_rss_gib() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 2**20
    return float("nan")


def make_labels(num_images: int, num_ids: int, seed: int = 0):
    """(labels, camids, single_images): multi-camera ids first, then single-camera ids."""
    rng = np.random.default_rng(seed)
    mc_images = MC_IDS * MC_IMAGES
    sc_ids = num_ids - MC_IDS
    sc_images = num_images - mc_images
    mc = np.repeat(np.arange(MC_IDS), MC_IMAGES)
    sc = np.concatenate(
        [
            np.repeat(np.arange(sc_ids), sc_images // sc_ids),
            rng.integers(0, sc_ids, sc_images % sc_ids),
        ]
    )
    labels = np.concatenate([mc, MC_IDS + sc])
    camids = np.concatenate([rng.integers(0, MC_CAMERAS, mc_images), sc // IDS_PER_VIDEO])
    single = np.concatenate([np.zeros(mc_images, bool), np.ones(sc_images, bool)])
    perm = rng.permutation(num_images)  # manifest order is not sorted by id
    return labels[perm], camids[perm], single[perm]


def identity_sampler_epoch(labels: np.ndarray, k: int, p: int, seed: int = 0) -> list[int]:
    """Baseline: the whole epoch's image order, built up front as torchreid does."""
    rng = random.Random(seed)
    index_dic: dict[int, list[int]] = defaultdict(list)
    for index, pid in enumerate(labels.tolist()):
        index_dic[pid].append(index)
    pids = list(index_dic)
    chunks: dict[int, list[list[int]]] = defaultdict(list)
    for pid in pids:
        idxs = copy.deepcopy(index_dic[pid])
        if len(idxs) < k:
            idxs = [rng.choice(idxs) for _ in range(k)]
        rng.shuffle(idxs)
        for start in range(0, len(idxs) - k + 1, k):
            chunks[pid].append(idxs[start : start + k])
    available = copy.deepcopy(pids)
    final: list[int] = []
    while len(available) >= p:
        for pid in rng.sample(available, p):
            final.extend(chunks[pid].pop(0))
            if not chunks[pid]:
                available.remove(pid)
    return final


@benchmark("sampler", "MixedBatchSampler at 1M images / 100k ids: first batch, per batch, RSS")
def sampler(quick: bool) -> Measurement:
    from dynamix.sampling import MixedBatchSampler

    torch.set_num_threads(1)  # tiny ops: OpenMP threads only add waits on a busy machine
    num_images, num_ids = (100_000, 10_000) if quick else (1_000_000, 100_000)
    labels, camids, single = make_labels(num_images, num_ids)
    bank = filled_bank(num_ids, "fp16")
    batch = (P_M + P_S) * K
    num_batches = 500 if quick else num_images // batch

    reset_peak_rss()
    start = time.perf_counter()
    s = MixedBatchSampler(labels, camids, single, p_m=P_M, p_s=P_S, k=K, matching=True, centroids=bank, seed=0)
    batches = iter(s)
    first = next(batches)
    t_first = time.perf_counter() - start
    rss = [(1, round(current_rss_gib(), 4))]
    times = []
    for i in range(2, num_batches + 1):
        t = time.perf_counter()
        next(batches)
        times.append(time.perf_counter() - t)
        if i % max(num_batches // 20, 1) == 0:
            rss.append((i, round(current_rss_gib(), 4)))
    peak = peak_rss_gib()
    assert len(first) == batch and len(set(first)) == batch

    reset_peak_rss()
    before = current_rss_gib()
    t = time.perf_counter()
    order = identity_sampler_epoch(labels, K, P_M + P_S)
    t_base = time.perf_counter() - t
    base_mem = peak_rss_gib() - before
    growth = rss[-1][1] - rss[0][1]
    params = {
        "sizes": f"{num_images:,} img × {num_ids:,} ids",
        "num_images": num_images,
        "num_ids": num_ids,
        "multi_camera": f"{MC_IDS:,} ids × {MC_IMAGES} images, {MC_CAMERAS} cameras",
        "single_camera": f"{num_ids - MC_IDS:,} ids, {IDS_PER_VIDEO} per video",
        "batch": f"{P_M} + {P_S} ids × {K} images, matching on, 100k-row fp16 bank"
        if not quick
        else f"{P_M} + {P_S} ids × {K} images, matching on",
        "seconds_is": "time to first batch (construction + first batch)",
        "per_batch_ms": {
            "median": round(statistics.median(times) * 1e3, 3),
            "p99": round(float(np.percentile(times, 99)) * 1e3, 3),
            "mean": round(statistics.fmean(times) * 1e3, 3),
        },
        "batches_drawn": num_batches,
        "epoch_seconds": round(t_first + sum(times), 2),
        "rss_gib_by_batch": rss,
        "rss_growth_over_epoch_mib": round(growth * 1024, 1),
        "target": "first batch fast, per-batch cost O(batch), RSS flat over an epoch",
        "baseline": "torchreid-style RandomIdentitySampler: whole epoch list built up front",
        "baseline_epoch_images": len(order),
        "baseline_extra_rss_gib": round(base_mem, 3),
        "torch_threads": 1,
    }
    return Measurement(t_first, peak, baseline_seconds=t_base, params=params)
