"""The ``large`` synthetic world end to end: synth → manifests → trainer → one relabel window.

What the other benchmarks measure on synthetic arrays, this one runs on real files: the
``large`` preset (1.15 M single-camera crops of 104 k pseudo ids, plus the labelled
domains) generated to disk, its Parquet manifests, and :class:`~dynamix.train.trainer.
Trainer` on it as shipped (on-the-fly relabeling, centroids at first sight: no pass over
the training images): the sampler and video groups over 1 M+ images, two training steps
that judge their batches, one relabeling window (merge from the bank with IVF search,
label quality against the ground truth over every single-camera image), the last step's
closing window and one evaluation of the targets.

Stages are timed one by one, with two memory figures: the peak of this process (VmHWM,
reset per stage) and the peak of the whole process tree (sampled every 0.5 s: synth and
DataLoader workers included). The encoder is ViT-Tiny cut to 1 block at 64×32 input, so
the evaluation fits a 2-core machine; its speed is not what is measured here
(``train_step_*`` is), the data path around it is.

``DYNAMIX_LARGE_WORLD=/path`` keeps the generated world there and reuses it on the next
run (synth is then reported as reused). ``--quick``: the ``tiny`` preset.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
from bench_train import params_for_world
from common import Measurement, benchmark, peak_rss_gib, reset_peak_rss

ENCODER = [
    "model.arch=vit_tiny_patch16_224",
    "model.depth=1",
    "model.img_height=64",
    "model.img_width=32",
    "model.drop_path_rate=0.0",
]
RUN = [
    "train.iters=2",
    "train.warmup_iters=1",
    "train.eval_every=2",
    "train.checkpoint_every=2",
    "train.eval_batch_size=256",
    "train.relabel.warmup=0",  # step 0 judged, its window closes after step 1
    "train.relabel.every=1",
    "tracking.ranked_list_queries=0",
]


class TreeRss:
    """Peak summed PSS of this process and all its descendants, sampled in a thread.

    PSS (proportional set size) splits pages shared by forked workers among them, so the
    sum is the tree's real footprint; RSS would count the shared pages once per worker.
    """

    def __init__(self, interval: float = 0.5) -> None:
        self.interval, self.peak = interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> int:
        me = psutil.Process()
        total = 0
        for proc in [me, *me.children(recursive=True)]:
            try:
                total += proc.memory_full_info().pss
            except psutil.Error:  # ended between listing and reading
                pass
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            self._stop.wait(self.interval)

    def __enter__(self) -> TreeRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._sample())


@contextmanager
def stage(rows: list[dict[str, Any]], name: str):
    """Time the block; append {stage, seconds, peak RSS of this process and of the tree}."""
    reset_peak_rss()
    row: dict[str, Any] = {"stage": name}
    start = time.perf_counter()
    with TreeRss() as tree:
        yield row
    row.update(
        seconds=round(time.perf_counter() - start, 1),
        rss_gib=round(peak_rss_gib(), 2),
        tree_rss_gib=round(tree.peak / 2**30, 2),
    )
    rows.append(row)
    print(f"  {name}: {row}", flush=True)


def disk_gib(root: Path) -> float:
    total = 0
    for dirpath, _, files in os.walk(root):
        total += sum(os.stat(os.path.join(dirpath, f)).st_size for f in files)
    return total / 2**30


def ensure_world(preset: str, target: Path, rows: list[dict[str, Any]]) -> Path:
    """Generate ``preset`` into ``target`` unless a world of that preset is already there."""
    from dynamix.synth import generate_world

    meta = target / "world.json"
    if meta.is_file() and json.loads(meta.read_text()).get("preset") == preset:
        rows.append({"stage": "synth", "seconds": None, "note": f"reused {target}"})
    else:
        with stage(rows, "synth") as row:
            generate_world(target, preset=preset, seed=0, overwrite=True)
            row["workers"] = os.cpu_count()
    return target


@benchmark(
    "large_world",
    "large preset end to end: synth, manifests, trainer over 1.15M files, one relabel window",
)
def large_world(quick: bool) -> Measurement:
    from dynamix.config import load_params
    from dynamix.data.manifest import manifest_path, read_manifest
    from dynamix.prepare import prepare_manifests
    from dynamix.train.trainer import Trainer
    from flows.run_outputs import read_events

    preset = "tiny" if quick else "large"
    keep = os.environ.get("DYNAMIX_LARGE_WORLD") if not quick else None
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        world = ensure_world(preset, Path(keep) if keep else root / "raw", rows)
        params_path = params_for_world(world, root)
        sets = [*ENCODER, *RUN, f"train.out_dir={root / 'run'}"]
        if not quick:
            sets.append("train.relabel.nlist=1000")  # IVF over ~100k centroids
        params = load_params(params_path, sets)
        with stage(rows, "manifests") as row:
            prepare_manifests(params)
        single = read_manifest(manifest_path(params, "lupnl-syn"))
        row.update(images=len(single), ids=int(single["pid"].nunique()))
        with stage(rows, "trainer init (sampler, video groups)") as row:
            trainer = Trainer(params)
            row["train_images"] = train_images = len(trainer.paths)
            row["ids"] = int(trainer.bank.num_ids)
        with stage(rows, "2 steps + relabel window (and the closing one) + evaluation") as row:
            metrics = trainer.fit()
        # the window at step 1 (it merges); the last step's closing window only reports step 1
        relabel = next(e for e in read_events(trainer.out_dir) if e["event"] == "relabel")
        row["relabel_window_s"] = round(relabel["seconds"], 1)
        total = sum(r["seconds"] or 0 for r in rows)
        peak = max(r.get("rss_gib", 0) for r in rows)
        tree = max(r.get("tree_rss_gib", 0) for r in rows)
        on_disk = disk_gib(world)
    keys = ("images_judged", "images_filtered", "images_relabeled", "ids_merged", "ids_remaining")
    quality = {
        when: {k: round(relabel[k + suffix], 4) for k in ("purity", "fragmentation", "ari") if k + suffix in relabel}
        for when, suffix in (("before", "_before"), ("after", ""))
    }
    params_out = {
        "sizes": f"{len(single):,} single-camera images, {single['pid'].nunique():,} pseudo ids",
        "preset": preset,
        "train_images": train_images,
        "disk_gib": round(on_disk, 3),
        "encoder": "ViT-Tiny, 1 block, 64×32 (untrained): the data path is measured",
        "relabel_search": "IVF, nlist 1000" if not quick else "exact",
        "seconds_is": "all stages (synth + manifests + trainer init + steps/window/eval)",
        "peak_tree_rss_gib": tree,
        "window": {k: relabel[k] for k in keys},
        "label_quality": quality,
        "final_step": metrics["step"],
        "rows_title": "per stage; rss = this process (VmHWM), tree = summed PSS with synth and DataLoader workers",
        "rows": rows,
    }
    return Measurement(total, peak, None, params_out)


@benchmark(
    "large_gate",
    "data gate on the large preset: stat every entry, decode a bounded seeded sample, every GX suite",
)
def large_gate(quick: bool) -> Measurement:
    """The gate (``validate_data``) on the ``large`` world, with its two costs apart.

    The stat pass (existence and size of every entry, :func:`dynamix.checks.image_sizes`)
    and the decode of one seeded sample (:data:`DECODE_PROBE` images of the single-camera
    set) are timed on their own, so their per-image rates extrapolate to 10 M crops; then
    the whole gate runs with the params as shipped (``decode_limit`` bounding each dataset).
    """
    import numpy as np

    from dynamix.checks import _decode, decode_mask, image_sizes
    from dynamix.config import load_params
    from dynamix.data.manifest import manifest_path, read_manifest
    from dynamix.prepare import prepare_manifests
    from flows.validation import validate_data

    preset = "tiny" if quick else "large"
    keep = os.environ.get("DYNAMIX_LARGE_WORLD") if not quick else None
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        world = ensure_world(preset, Path(keep) if keep else root / "raw", rows)
        params = load_params(params_for_world(world, root))
        with stage(rows, "manifests"):
            prepare_manifests(params)
        paths = read_manifest(manifest_path(params, "lupnl-syn"))["path"].astype(str).tolist()
        with stage(rows, "stat pass, single-camera set") as row:
            start = time.perf_counter()
            sizes = image_sizes(paths)
            row.update(images=len(paths), us_per_image=round((time.perf_counter() - start) / len(paths) * 1e6, 2))
        probe = np.flatnonzero(decode_mask(len(paths), min(DECODE_PROBE, len(paths)), seed=0))
        with stage(rows, "decode sample, single-camera set") as row:
            start = time.perf_counter()
            decoded = sum(_decode(paths[i])[0] for i in probe)
            row.update(images=len(probe), ms_per_image=round((time.perf_counter() - start) / len(probe) * 1e3, 3))
        with stage(rows, "gate (validate_data), every dataset") as row:
            summary = validate_data(params)
        row.update(
            rows=sum(d["rows"] for d in summary["datasets"].values()),
            decoded=sum(d["decoded"] for d in summary["datasets"].values()),
            success=summary["success"],
        )
    gate = rows[-1]
    stat_us, decode_ms = rows[-3]["us_per_image"], rows[-2]["ms_per_image"]
    limit = params.validation.decode_limit
    params_out = {
        "sizes": f"{gate['rows']:,} manifest rows ({len(paths):,} single-camera), {gate['decoded']:,} decoded",
        "preset": preset,
        "all_present": bool((sizes >= 0).all()) and decoded == len(probe),
        "decode_limit": limit,
        "at_10m_crops_estimate_s": {
            "stat_pass": round(10e6 * stat_us / 1e6, 1),
            "decode_limit_sample": round(limit * decode_ms / 1e3, 1),
            "decode_everything": round(10e6 * decode_ms / 1e3, 1),
        },
        "seconds_is": "the whole gate (validate_data) on every dataset of the world",
        "rows_title": "per stage; rss = this process (VmHWM), tree = summed PSS",
        "rows": rows,
    }
    return Measurement(gate["seconds"], max(r.get("rss_gib", 0) for r in rows), None, params_out)


DECODE_PROBE = 20_000  # images decoded to measure the per-image decode rate
