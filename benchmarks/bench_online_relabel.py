"""On-the-fly relabeling: per-step judging is flat in images and ids; per-window merging.

Measured: :meth:`dynamix.relabel.OnlineRelabeler.judge` on a trainer-shaped batch of
single-camera images (16 ids × 4 images, momentum features of dim 192, ViT-Tiny) against
an fp16 bank whose rows are all initialised, with the ``train.relabel`` settings of
``params.yaml`` (filter, reassign, merge on; ``filter_min_history`` lowered to 0 so every
step filters). Candidates: the ids of the image's video (8 ids per video) and the 8
nearest centroids of its own id. Sizes: the demo's world (35k images × 4k ids) and a
LUPerson-NL-like one (2M × 200k); the per-step time should not change between them.

Baseline: the straightforward judge that scores each image against **every** centroid
(a dense (B × C) similarity matrix, as a full-pass round does per image): O(B · C · D)
per step, so it grows with the number of ids.

Also measured: :meth:`~dynamix.relabel.OnlineRelabeler.end_window` (once per window: faiss
kNN over the live centroids, merge, candidate lists, O(N) label bookkeeping), exact
search below 100k ids, IVF (``nlist = ids / 100``) above. Quick mode runs the window at
200k × 20k instead of 2M × 200k (the exact kNN graph at 200k ids takes minutes on 2 cores).
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from common import Measurement, benchmark, peak_rss_gib, reset_peak_rss

DIM, IDS_PER_BATCH, K, IDS_PER_VIDEO = 192, 16, 4, 8
JUDGE_SIZES = ((35_000, 4_000), (2_000_000, 200_000))
WINDOW_SIZES = {True: ((35_000, 4_000), (200_000, 20_000)), False: ((35_000, 4_000), (2_000_000, 200_000))}
IVF_FROM_IDS = 100_000


def settings(num_ids: int):
    """``train.relabel`` of params.yaml, every step filtering, IVF search for big banks."""
    from dynamix.config import load_params

    rc = load_params(Path(__file__).resolve().parents[1] / "params.yaml").train.relabel
    nlist = num_ids // 100 if num_ids >= IVF_FROM_IDS else 0
    return dataclasses.replace(rc, warmup=0, filter_min_history=0, nlist=nlist)


class World:
    """``num_images`` single-camera images over ``num_ids`` ids, 8 ids per video, a full bank."""

    def __init__(self, num_images: int, num_ids: int, seed: int = 0) -> None:
        from dynamix.centroids import CentroidBank
        from dynamix.relabel import OnlineRelabeler

        rng = np.random.default_rng(seed)
        self.labels = np.concatenate([np.arange(num_ids), rng.integers(0, num_ids, num_images - num_ids)])
        self.videos = self.labels // IDS_PER_VIDEO
        self.bank = CentroidBank(num_ids, DIM, dtype="fp16")
        gen = torch.Generator().manual_seed(seed)
        for start in range(0, num_ids, 1 << 16):
            rows = self.bank.centroids[start : start + (1 << 16)]
            rows.copy_(F.normalize(torch.randn(rows.shape, generator=gen), dim=1))
        self.bank.counts.fill_(1)
        self.cfg = settings(num_ids)
        self.relabeler = OnlineRelabeler(self.labels, np.ones(num_images, bool), self.videos, num_ids, self.cfg)
        self.num_ids, self.rng, self.gen = num_ids, rng, gen

    def batch(self) -> tuple[np.ndarray, torch.Tensor]:
        """(index (B,), momentum features (B, D)): K images near each of 16 ids' centroids."""
        ids = self.rng.choice(self.num_ids, IDS_PER_BATCH, replace=False)
        index = np.repeat(ids, K)  # the first num_ids images hold label == index
        centres = self.bank.centroids[torch.from_numpy(index)].float()
        noise = torch.randn(centres.shape, generator=self.gen) / DIM**0.5
        return index, F.normalize(centres + noise, dim=1)


def dense_judge(world: World, index: np.ndarray, feats: torch.Tensor) -> np.ndarray:
    """Baseline: every image against every centroid (B × C), best other id and own score."""
    sims = feats @ world.bank.centroids.float().T  # (B, C): the O(C) per step
    own = torch.from_numpy(world.labels[index])
    s_own = sims[torch.arange(len(index)), own].clone()
    sims[torch.arange(len(index)), own] = -2.0
    s_best, best = sims.max(1)
    move = (s_best >= world.cfg.tau_relabel) & (s_best >= s_own + world.cfg.margin)
    return torch.where(move, best, own).numpy()


def judge_row(num_images: int, num_ids: int, steps: int, quick: bool) -> dict[str, Any]:
    """Median per-step judge (ours and dense) at one size; neighbours as if a window had run."""
    world = World(num_images, num_ids)
    rel = world.relabeler
    rel.neighbours[:] = world.rng.integers(0, num_ids, rel.neighbours.shape)  # a kNN graph's shape
    data = [world.batch() for _ in range(steps + 5)]
    labels = world.labels
    for step, (index, feats) in enumerate(data[:5]):  # warm-up
        rel.judge(index, feats, labels[index], world.bank, step)
    reset_peak_rss()
    before = peak_rss_gib()
    times = []
    for step, (index, feats) in enumerate(data[5:], start=5):
        start = time.perf_counter()
        rel.judge(index, feats, labels[index], world.bank, step)
        times.append(time.perf_counter() - start)
    growth = peak_rss_gib() - before
    dense = []
    for index, feats in data[5 : 5 + (5 if quick else 20)]:
        start = time.perf_counter()
        dense_judge(world, index, feats)
        dense.append(time.perf_counter() - start)
    return {
        "images": num_images,
        "ids": num_ids,
        "batch": IDS_PER_BATCH * K,
        "judge_ms": round(statistics.median(times) * 1e3, 3),
        "judge_p90_ms": round(float(np.percentile(times, 90)) * 1e3, 3),
        "judge_rss_growth_mib": round(growth * 1024, 1),
        "dense_ms": round(statistics.median(dense) * 1e3, 2),
    }


def window_row(num_images: int, num_ids: int) -> dict[str, Any]:
    """One end_window (kNN graph, merge, candidate lists, stats) after a few judged steps."""
    world = World(num_images, num_ids, seed=1)
    rel = world.relabeler
    labels = world.labels.copy()
    for step in range(20):
        index, feats = world.batch()
        labels[index] = rel.judge(index, feats, labels[index], world.bank, step)
    reset_peak_rss()
    start = time.perf_counter()
    result = rel.end_window(labels, world.bank, 20)
    seconds = time.perf_counter() - start
    nlist = world.cfg.nlist
    return {
        "images": num_images,
        "ids": num_ids,
        "window_s": round(seconds, 3),
        "window_gib": round(peak_rss_gib(), 2),
        "search": f"IVF nlist {nlist}" if nlist else "exact",
        "ids_merged": result.stats["ids_merged"],
    }


@benchmark("online_relabel", "on-the-fly relabeling: judge per step at 35k x 4k vs 2M x 200k ids, end_window")
def online_relabel(quick: bool) -> Measurement:
    # One thread for the judge: a step is a few hundred kFLOP, where threads only add
    # synchronisation and a busy 2-core machine's scheduler would dominate the median.
    torch.set_num_threads(1)
    steps = 50 if quick else 300
    judge_rows = [judge_row(n, c, steps, quick) for n, c in JUDGE_SIZES]
    torch.set_num_threads(os.cpu_count() or 1)
    window_rows = [window_row(n, c) for n, c in WINDOW_SIZES[quick]]
    small, large = judge_rows[0], judge_rows[-1]
    rows = []  # one per size: the judge's and the window's columns, "-" where not run
    for n, c in sorted({*JUDGE_SIZES, *WINDOW_SIZES[quick]}):
        j = next((r for r in judge_rows if (r["images"], r["ids"]) == (n, c)), {})
        w = next((r for r in window_rows if (r["images"], r["ids"]) == (n, c)), {})
        row: dict[str, Any] = {"images": n, "ids": c}
        row.update({k: j.get(k, "-") for k in ("judge_ms", "judge_p90_ms", "judge_rss_growth_mib", "dense_ms")})
        row.update({k: w.get(k, "-") for k in ("window_s", "window_gib", "search")})
        rows.append(row)
    params = {
        "sizes": f"{large['images']:,} img × {large['ids']:,} ids × {DIM}",
        "dim": DIM,
        "batch": f"{IDS_PER_BATCH} ids × {K} images; {IDS_PER_VIDEO} ids per video; topk neighbour candidates",
        "judge_flat_ratio": round(large["judge_ms"] / small["judge_ms"], 2),
        "judge_rows": judge_rows,
        "window_rows": window_rows,
        "baseline": "dense judge: every image of the batch against every centroid (B × C), at the large size",
        "rows_title": (
            "judge_ms: median per-step OnlineRelabeler.judge, one thread (dense_ms: against every "
            "centroid); window_s: one end_window (kNN graph, merge, candidate lists, O(N) bookkeeping)"
        ),
        "rows": rows,
    }
    return Measurement(large["judge_ms"] / 1e3, peak_rss_gib(), baseline_seconds=large["dense_ms"] / 1e3, params=params)
