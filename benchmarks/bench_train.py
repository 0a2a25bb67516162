"""Training step throughput: ViT-S/16 and ViT-B/16 at 256×128, CPU and (when present) GPU.

Measured: the real :meth:`dynamix.train.trainer.Trainer.train_step` (online forward and
backward, momentum-encoder forward, centroid + triplet + consistency losses, AdamW,
EMA update, centroid-bank update) on real mixed batches of the tiny synthetic world. The
only change is that the centroid bank starts from random unit features instead of a
feature pass over the world (setup, not the step). FLOPs per step come from
``torch.utils.flop_counter.FlopCounterMode`` over one step.

Baseline: a bare supervised step of the same ViT (forward, backward, AdamW; no momentum
encoder, centroids or mixed losses) on the same images, i.e. what a plain re-ID
fine-tuning step costs. ``ratio_vs_baseline`` < 1 is DynaMix's overhead per step.

``train_step_gpu`` runs only with CUDA (bf16 autocast, batch 64): images/s, achieved
TFLOP/s and MFU against the device's dense bf16 peak, peak GPU memory, and one relabeling
round with faiss on the GPU against faiss on the CPU. Without CUDA it skips (no entry).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import yaml
from common import Measurement, SkipBenchmark, benchmark, peak_rss_gib, reset_peak_rss

REPO = Path(__file__).resolve().parents[1]
ARCHS = {"ViT-S/16": "vit_small_patch16_224", "ViT-B/16": "vit_base_patch16_224"}
# Dense bf16 tensor-core peaks (TFLOP/s) from the vendors' data sheets, by device name.
PEAK_BF16_TFLOPS = {
    "H200": 989.4,
    "H100 SXM": 989.4,
    "H100 NVL": 835.0,
    "H100 PCIe": 756.0,
    "H100": 756.0,
    "A100": 312.0,
    "L40S": 362.1,
    "L4": 121.0,
    "A10": 125.0,
    "RTX 4090": 165.2,
}


def world_params(root: Path) -> Path:
    """The repo's params.yaml pointed at a fresh tiny world under ``root``, manifests ready."""
    from dynamix.config import load_params
    from dynamix.prepare import prepare_manifests
    from dynamix.synth import generate_world

    world = generate_world(root / "raw", preset="tiny", seed=0, workers=1)
    path = params_for_world(world, root)
    prepare_manifests(load_params(path))
    return path


def params_for_world(world: Path, root: Path) -> Path:
    """``root/params.yaml``: the repo's params.yaml pointed at the generated ``world``, with
    manifests and validation reports under ``root`` (manifests not built yet)."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["data"]["raw_dir"] = str(world)
    raw["data"]["manifests_dir"] = str(root / "manifests")
    for group in ("sources", "single_camera", "targets"):
        for spec in raw["data"][group]:
            spec["root"] = str(world / Path(spec["root"]).name)
    raw["validation"]["reports_dir"] = str(root / "validation")
    raw["validation"]["summary_path"] = str(root / "validation.json")
    root.mkdir(parents=True, exist_ok=True)
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def make_trainer(params_path: Path, out: Path, arch: str, size, device: str, layout):
    """A Trainer whose bank starts from random unit features (no init feature pass)."""
    from dynamix.config import load_params
    from dynamix.train.trainer import Trainer

    class BenchTrainer(Trainer):
        def init_bank(self) -> None:
            gen = torch.Generator().manual_seed(0)
            feats = F.normalize(torch.randn(len(self.labels), self.bank.dim, generator=gen), dim=1)
            self.bank.init_from(feats, torch.from_numpy(self.labels))
            self.bank.finish_init()

    p_m, p_s, k = layout
    params = load_params(
        params_path,
        [
            f"model.arch={arch}",
            f"model.img_height={size[0]}",
            f"model.img_width={size[1]}",
            f"train.device={device}",
            "train.num_workers=0",
            f"train.out_dir={out}",
            f"train.sampler.p_m={p_m}",
            f"train.sampler.p_s={p_s}",
            f"train.sampler.k={k}",
        ],
    )
    return BenchTrainer(params)


def real_batches(trainer, count: int) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """``count`` (view1, view2, index) batches drawn by the trainer's sampler and dataset."""
    out = []
    for _ in range(count):
        index = trainer.sampler.next_batch()
        items = [trainer.dataset[i] for i in index]
        view1 = torch.stack([it[0] for it in items])
        view2 = torch.stack([it[1] for it in items])
        out.append((view1, view2, torch.tensor(index)))
    return out


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def step_times(fn, batches, device: str) -> list[float]:
    times = []
    for batch in batches:
        sync(device)
        start = time.perf_counter()
        fn(*batch)
        sync(device)
        times.append(time.perf_counter() - start)
    return times


def step_flops(trainer, batch) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        trainer.train_step(*batch)
    return counter.get_total_flops()


def bare_step_fn(trainer):
    """Baseline step: the same ViT, forward + backward + AdamW on a plain loss."""
    from dynamix.model import ReIDModel

    m = trainer.model
    pm = trainer.params.model
    model = ReIDModel(m.arch, m.img_size, None, pm.drop_path_rate, depth=pm.depth, global_pool=pm.global_pool)
    model = model.to(trainer.device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step(view1: torch.Tensor, view2: torch.Tensor, index: torch.Tensor) -> None:
        x = view2.to(trainer.device)
        with torch.autocast(trainer.device.type, dtype=torch.bfloat16, enabled=trainer.amp):
            emb = model(x)
        loss = (emb.float() @ emb.float().T).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def measure(params_path: Path, tmp: Path, name: str, size, device: str, layout, steps: int):
    trainer = make_trainer(params_path, tmp / name.replace("/", "_"), ARCHS[name], size, device, layout)
    batches = real_batches(trainer, 3)
    trainer.train_step(*batches[0])  # warm-up: allocator, autocast caches
    flops = step_flops(trainer, batches[1])
    timed = [batches[i % len(batches)] for i in range(steps)]
    ours = step_times(trainer.train_step, timed, device)
    bare = bare_step_fn(trainer)
    bare(*batches[0])
    base = step_times(bare, timed, device)
    batch = len(batches[0][2])
    t, tb = statistics.median(ours), statistics.median(base)
    row: dict[str, Any] = {
        "model": name,
        "input": f"{size[0]}×{size[1]}",
        "batch": batch,
        "step_s": round(t, 4),
        "img_s": round(batch / t, 2),
        "gflop_per_step": round(flops / 1e9, 1),
        "achieved_tflop_s": round(flops / t / 1e12, 3),
        "bare_step_s": round(tb, 4),
        "bare_img_s": round(batch / tb, 2),
    }
    del trainer
    return row, t, tb


@benchmark("train_step_cpu", "Trainer.train_step images/s, ViT-S/16 and ViT-B/16 at 256x128, CPU")
def train_step_cpu(quick: bool) -> Measurement:
    cases = [("ViT-S/16", (64, 32))] if quick else [("ViT-S/16", (256, 128)), ("ViT-B/16", (256, 128))]
    steps = 2 if quick else 5
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        params_path = world_params(Path(tmp))
        reset_peak_rss()
        for name, size in cases:
            row, t, tb = measure(params_path, Path(tmp), name, size, "cpu", (2, 2, 2), steps)
            rows.append(row)
        peak = peak_rss_gib()
    head = rows[-1]
    params = {
        "sizes": f"{head['model']}, {head['input']}, batch {head['batch']}",
        "device": "cpu",
        "torch_threads": torch.get_num_threads(),
        "precision": "fp32",
        "batch_layout": "2 multi-camera + 2 single-camera ids × 2 images, two views each",
        "steps_timed": steps,
        "seconds_is": f"median seconds per train_step, {head['model']}",
        "img_s": {r["model"]: r["img_s"] for r in rows},
        "baseline": "bare ViT step (forward, backward, AdamW) on the same images",
        "rows_title": "median per step; bare = baseline step without the DynaMix parts",
        "rows": rows,
    }
    return Measurement(t, peak, tb, params)


def peak_tflops(device_name: str) -> float | None:
    for key, value in PEAK_BF16_TFLOPS.items():  # most specific names first
        if key in device_name:
            return value
    return None


def faiss_gpu_vs_cpu(num_ids: int, dim: int, topk: int = 8) -> dict[str, Any]:
    """A relabeling window's kNN graph over the centroid bank, faiss on the GPU and the CPU."""
    import numpy as np

    from dynamix.relabel.search import gpu_available, knn_search

    if not gpu_available(True):
        return {"faiss_gpu": "not available (faiss-cpu build); install faiss-gpu-cu12"}
    rng = np.random.default_rng(0)
    centroids = rng.standard_normal((num_ids, dim)).astype(np.float32)
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    out: dict[str, Any] = {"sizes": f"{num_ids:,} centroids × {dim}, top-{topk + 1}, exact search"}
    for name, use_gpu in (("gpu", True), ("cpu", False)):
        start = time.perf_counter()
        knn_search(centroids, centroids, topk + 1, use_gpu=use_gpu)
        out[f"faiss_{name}_s"] = round(time.perf_counter() - start, 2)
    out["speedup"] = round(out["faiss_cpu_s"] / max(out["faiss_gpu_s"], 1e-3), 1)
    return out


@benchmark("train_step_gpu", "Trainer.train_step on CUDA with bf16 AMP: img/s, TFLOP/s, MFU")
def train_step_gpu(quick: bool) -> Measurement:
    if not torch.cuda.is_available():
        raise SkipBenchmark("no CUDA device")
    device, steps = "cuda", 5 if quick else 20
    name_gpu = torch.cuda.get_device_name(0)
    peak = peak_tflops(name_gpu)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        params_path = world_params(Path(tmp))
        for name in ("ViT-S/16", "ViT-B/16"):
            torch.cuda.reset_peak_memory_stats()
            row, t, tb = measure(params_path, Path(tmp), name, (256, 128), device, (8, 8, 4), steps)
            row["peak_gpu_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
            row["mfu"] = None if peak is None else round(row["achieved_tflop_s"] / peak, 4)
            rows.append(row)
    head = rows[-1]
    bank_ids = 2_000 if quick else 200_000
    params = {
        "sizes": f"{head['model']}, 256×128, batch {head['batch']}",
        "device": name_gpu,
        "precision": "bf16 autocast",
        "peak_bf16_tflops": peak,
        "steps_timed": steps,
        "seconds_is": f"median seconds per train_step, {head['model']}",
        "img_s": {r["model"]: r["img_s"] for r in rows},
        "relabel_faiss": faiss_gpu_vs_cpu(bank_ids, 256),
        "baseline": "bare ViT step (forward, backward, AdamW), bf16 autocast",
        "rows_title": "median per step on the GPU",
        "rows": rows,
    }
    return Measurement(t, peak_rss_gib(), tb, params)
