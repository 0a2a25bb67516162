"""Centroid bank: per-step update cost from 10k to 1M identities, and the bank's memory.

Measured: :meth:`dynamix.centroids.CentroidBank.update` with a trainer-shaped batch
(32 ids × 4 images = 128 momentum features, dim 768, momentum 0.2) on an fp16 bank whose
rows are all initialised. Its cost should not depend on the number of ids: it gathers,
updates and writes back only the batch's rows.

Baseline: the straightforward dense update, which accumulates the batch into a full
``(C, D)`` fp32 sum table with ``index_add_`` and a ``bincount`` over all ids, then writes
the touched rows: O(C · D) memory traffic per step.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import torch
import torch.nn.functional as F
from common import Measurement, benchmark, peak_rss_gib, reset_peak_rss

DIM, IDS_PER_BATCH, K, MOMENTUM = 768, 32, 4, 0.2
LUPERSON_NL_IDS = 434_000


def filled_bank(num_ids: int, dtype: str, seed: int = 0):
    """A bank with every row a random unit vector and count 1 (filled in chunks)."""
    from dynamix.centroids import CentroidBank

    bank = CentroidBank(num_ids, DIM, dtype=dtype)
    gen = torch.Generator().manual_seed(seed)
    for start in range(0, num_ids, 1 << 16):
        rows = bank.centroids[start : start + (1 << 16)]
        rows.copy_(F.normalize(torch.randn(rows.shape, generator=gen), dim=1))
    bank.counts.fill_(1)
    return bank


def batches(num_ids: int, steps: int, seed: int = 1) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``steps`` (features (B, D), labels (B,)) pairs: 32 random ids × 4 images each."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(steps):
        ids = torch.randperm(num_ids, generator=gen)[:IDS_PER_BATCH]
        labels = ids.repeat_interleave(K)
        feats = F.normalize(torch.randn(len(labels), DIM, generator=gen), dim=1)
        out.append((feats, labels))
    return out


@torch.no_grad()
def dense_update(bank, features: torch.Tensor, labels: torch.Tensor, momentum: float) -> None:
    """Baseline: full-size (C, D) fp32 accumulator, then the touched rows."""
    sums = torch.zeros(bank.num_ids, bank.dim).index_add_(0, labels, features)  # (C, D)
    counts = torch.bincount(labels, minlength=bank.num_ids)  # (C,)
    ids = torch.nonzero(counts)[:, 0]
    mean = sums.index_select(0, ids) / counts[ids, None]
    old = bank.centroids.index_select(0, ids).float()
    new = F.normalize(momentum * old + (1 - momentum) * mean, dim=1)
    bank.centroids.index_copy_(0, ids, new.to(bank.dtype))
    bank.counts[ids] += counts[ids]


def per_step(fn, bank, data) -> list[float]:
    times = []
    for feats, labels in data:
        start = time.perf_counter()
        fn(bank, feats, labels)
        times.append(time.perf_counter() - start)
    return times


def ours(bank, feats, labels) -> None:
    bank.update(feats, labels, MOMENTUM)


def baseline(bank, feats, labels) -> None:
    dense_update(bank, feats, labels, MOMENTUM)


def measure(num_ids: int, dtype: str, steps: int, base_steps: int) -> dict[str, Any]:
    """Median per-step seconds of ours and the baseline, and ours' RSS growth."""
    bank = filled_bank(num_ids, dtype)
    data = batches(num_ids, steps + 5)
    per_step(ours, bank, data[:5])  # warm-up
    reset_peak_rss()
    before = peak_rss_gib()
    t_ours = per_step(ours, bank, data[5:])
    growth = peak_rss_gib() - before
    row: dict[str, Any] = {
        "ids": num_ids,
        "dtype": dtype,
        "bank_gib": round(bank.centroids.nbytes / 2**30, 3),
        "ours_us": round(statistics.median(t_ours) * 1e6, 1),
        "ours_rss_growth_mib": round(growth * 1024, 1),
    }
    if base_steps:
        t_base = per_step(baseline, bank, data[5 : 5 + base_steps])
        row["dense_ms"] = round(statistics.median(t_base) * 1e3, 2)
    return row


def same_result(num_ids: int) -> float:
    """Max abs difference of ours vs the dense baseline after a few steps (a sanity check)."""
    a, b = filled_bank(num_ids, "fp32"), filled_bank(num_ids, "fp32")
    for feats, labels in batches(num_ids, 5):
        ours(a, feats, labels)
        baseline(b, feats, labels)
    return float((a.centroids - b.centroids).abs().max())


@benchmark("centroid_update", "CentroidBank.update per step, 10k -> 1M ids (dim 768, batch 128)")
def centroid_update(quick: bool) -> Measurement:
    sizes = (1_000, 10_000, 100_000) if quick else (10_000, 100_000, 1_000_000)
    steps, base_steps = (50, 5) if quick else (300, 20)
    # One thread: a step is ~0.1 MFLOP, where OpenMP threads only add synchronisation, and
    # on a busy 2-core machine a 2-thread median measures the scheduler (0.3 ms best, 100 ms
    # median seen), not the update.
    torch.set_num_threads(1)
    rows = [measure(c, "fp16", steps, base_steps) for c in sizes]
    largest = sizes[-1]
    rows += [measure(largest, dt, steps, 0) for dt in ("bf16", "fp32")]
    head = rows[len(sizes) - 1]
    flat = head["ours_us"] / rows[0]["ours_us"]
    # peak RSS of the headline case, bank included: re-run it alone
    reset_peak_rss()
    bank = filled_bank(largest, "fp16")
    times = per_step(ours, bank, batches(largest, steps))
    peak = peak_rss_gib()
    seconds = statistics.median(times)
    bytes_per = {"fp16": 2, "bf16": 2, "fp32": 4}
    params = {
        "sizes": f"{sizes[0]:,} → {largest:,} ids × {DIM}",
        "dim": DIM,
        "batch": f"{IDS_PER_BATCH} ids × {K} images",
        "momentum": MOMENTUM,
        "seconds_is": f"median seconds per update step at {largest:,} ids, fp16 bank",
        "steps": steps,
        "torch_threads": 1,
        "cost_ratio_largest_vs_smallest": round(flat, 2),
        "target": "per-step cost flat in the number of ids",
        "target_met": bool(flat < 2.0),
        "max_abs_diff_vs_dense": same_result(sizes[0]),
        "bank_gib": {
            f"{n:,} ids": {dt: round(n * DIM * b / 2**30, 3) for dt, b in bytes_per.items()}
            for n in (*sizes, LUPERSON_NL_IDS)
        },
        "baseline": "dense update: (C, D) fp32 index_add_ accumulator + bincount, median step",
        "rows_title": "median per step; ours in µs, dense baseline in ms",
        "rows": rows,
    }
    return Measurement(seconds, peak, head["dense_ms"] / 1e3, params)
