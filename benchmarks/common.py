"""Helpers every benchmark module uses: the registry, timing, peak memory, machine facts.

A benchmark is a function ``fn(quick: bool) -> Measurement`` registered under a name with
:func:`benchmark`. ``run.py`` imports the modules listed in ``MODULES`` and runs each
registered name in a fresh subprocess, so the peak RSS it reports is that case's own.
"""

from __future__ import annotations

import os
import platform
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# Benchmark modules, imported by run.py; add a module here to plug new benchmarks in.
MODULES = (
    "bench_eval",
    "bench_online_relabel",
    "bench_centroids",
    "bench_sampler",
    "bench_input",
    "bench_train",
    "bench_pipeline",
    "bench_large",
)


class SkipBenchmark(Exception):
    """Raised by a benchmark that cannot run here (e.g. no GPU): no entry is written."""


@dataclass
class Measurement:
    """What a benchmark returns. ``seconds``: the measured code (best of the repeats);
    ``baseline_seconds``: the reference it is compared with (None if none);
    ``peak_rss_gib``: peak resident memory of the measured code, inputs included.
    ``params`` may hold ``sizes`` (the table's size label) and ``rows`` (a list of dicts
    with the same keys, rendered as an extra table, e.g. a scaling series)."""

    seconds: float
    peak_rss_gib: float
    baseline_seconds: float | None = None
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Benchmark:
    name: str
    description: str
    fn: Callable[[bool], Measurement]


BENCHMARKS: dict[str, Benchmark] = {}


def benchmark(name: str, description: str) -> Callable[[Callable], Callable]:
    """Register ``fn(quick) -> Measurement`` under ``name``."""

    def wrap(fn: Callable[[bool], Measurement]) -> Callable[[bool], Measurement]:
        if name in BENCHMARKS:
            raise ValueError(f"benchmark {name!r} registered twice")
        BENCHMARKS[name] = Benchmark(name, description, fn)
        return fn

    return wrap


def reset_peak_rss() -> bool:
    """Reset this process's peak RSS (Linux ``clear_refs`` 5), so that the peak measured
    afterwards excludes the setup (e.g. generating the inputs). False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def peak_rss_gib() -> float:
    """Peak resident memory of this process since start or the last reset, in GiB."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def time_best(fn: Callable[[], Any], repeats: int) -> tuple[float, list[float], Any]:
    """Run ``fn`` ``repeats`` times; return (best seconds, all seconds, last result).

    The best of several runs is the least disturbed by other work on a shared machine.
    """
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), times, out


def summary(times: list[float]) -> dict[str, float]:
    return {"best": round(min(times), 4), "median": round(statistics.median(times), 4)}


def wait_for_quiet(max_busy_percent: float, max_wait_s: float) -> float:
    """Wait (up to ``max_wait_s``) until other work uses < ``max_busy_percent`` of the CPUs.

    On a shared 2-core machine a concurrent test run doubles or worse every timing, so each
    case starts on an idle machine where possible. Returns the last busy percentage seen.
    """
    import psutil

    deadline = time.monotonic() + max_wait_s
    busy = psutil.cpu_percent(interval=1.0)
    while busy >= max_busy_percent and time.monotonic() < deadline:
        time.sleep(4.0)
        busy = psutil.cpu_percent(interval=1.0)
    return busy


def machine_info() -> dict[str, Any]:
    """CPU model, cores, RAM, torch version and device: where the numbers come from."""
    import psutil
    import torch

    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if "model name" in line)
    except (OSError, StopIteration):
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "device": "cpu",
        "python": platform.python_version(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }
