"""Input pipeline: decoded + augmented images per second per core, 128×64 and 256×128.

Measured: :class:`dynamix.data.images.ManifestImageDataset` with the trainer's
``build_transforms(train=True)`` (resize, flip, pad + crop, colour jitter, random erasing;
torchvision v2 on uint8) over real JPEG crops of the synthetic world (``dynamix synth
--preset tiny``: 128×64 like Market-1501, so 256×128 upsamples as on real data). One
core: the main process with one torch thread, and one DataLoader worker (batches of 64);
also the trainer's two-view mode (one decode, two augmentations).

Baseline: the same augmentations as re-ID toolkits write them (torchreid / fast-reid):
torchvision v1 transforms on PIL images (Resize, RandomHorizontalFlip, Pad, RandomCrop,
ColorJitter, ToTensor, RandomErasing), same decoder, same images, same core.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from common import Measurement, benchmark, peak_rss_gib, reset_peak_rss

SIZES = ((128, 64), (256, 128))


def world_images(root: Path) -> list[str]:
    """JPEG paths of a freshly generated tiny synthetic world under ``root``."""
    from dynamix.synth import generate_world

    generate_world(root / "world", preset="tiny", seed=0, workers=1, image_size=(128, 64))
    return sorted(str(p) for p in (root / "world").rglob("*.jpg"))


def v1_transforms(size: tuple[int, int]):
    """Baseline: the toolkits' PIL pipeline with the same augmentations as ours."""
    from torchvision import transforms as T

    from dynamix.data.images import IMAGENET_MEAN

    pad = max(1, round(10 * size[0] / 256))
    return T.Compose(
        [
            T.Resize(size),
            T.RandomHorizontalFlip(0.5),
            T.Pad(pad),
            T.RandomCrop(size),
            T.RandomApply([T.ColorJitter(0.2, 0.2, 0.2)], p=0.5),
            T.ToTensor(),
            T.RandomErasing(p=0.5, value=list(IMAGENET_MEAN)),
        ]
    )


def images_per_second(dataset, count: int) -> float:
    """Main process: ``dataset[i]`` for ``count`` indices (cycling), images per second."""
    start = time.perf_counter()
    for i in range(count):
        dataset[i % len(dataset)]
    return count / (time.perf_counter() - start)


def best_of_alternating(a, b, count: int, rounds: int = 2) -> tuple[float, float]:
    """Best images/s of ``a`` and ``b``, measured in turns so load spikes hit both alike."""
    best_a = best_b = 0.0
    for _ in range(rounds):
        best_a = max(best_a, images_per_second(a, count))
        best_b = max(best_b, images_per_second(b, count))
    return best_a, best_b


def loader_images_per_second(dataset, count: int, workers: int) -> float:
    """Through a DataLoader with ``workers`` workers (startup included), images per second."""
    from torch.utils.data import DataLoader, Subset

    indices = [i % len(dataset) for i in range(count)]
    loader = DataLoader(Subset(dataset, indices), batch_size=64, num_workers=workers)
    start = time.perf_counter()
    seen = sum(len(batch[-1]) for batch in loader)
    return seen / (time.perf_counter() - start)


@benchmark("input_pipeline", "decode + augment images/s per core at 128x64 and 256x128")
def input_pipeline(quick: bool) -> Measurement:
    from dynamix.data.images import ManifestImageDataset, build_transforms

    torch.set_num_threads(1)  # per core
    count = 300 if quick else 3000
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = world_images(Path(tmp))
        reset_peak_rss()
        for h, w in SIZES:
            ours = ManifestImageDataset(paths, transform=build_transforms((h, w), train=True))
            two = ManifestImageDataset(paths, transform=build_transforms((h, w), train=True), two_views=True)
            base = ManifestImageDataset(paths, transform=v1_transforms((h, w)))
            images_per_second(ours, 20)  # warm-up: imports, first decode
            images_per_second(base, 20)
            main, v1 = best_of_alternating(ours, base, count)
            row = {
                "size": f"{h}×{w}",
                "main_img_s": round(main, 1),
                "worker_img_s": round(loader_images_per_second(ours, count, 1), 1),
                "two_view_img_s": round(images_per_second(two, count), 1),
                "baseline_v1_img_s": round(v1, 1),
            }
            rows.append(row)
        peak = peak_rss_gib()
    head = rows[-1]  # 256×128
    params = {
        "sizes": "128×64, 256×128",
        "images": len(paths),
        "images_per_case": count,
        "source": "tiny synthetic world rendered at 128×64 (Market-1501 size), JPEG",
        "seconds_is": f"seconds for {count} images at 256×128, main process, 1 thread "
        "(best of 2, alternating with the baseline)",
        "img_s_per_core_256x128": head["main_img_s"],
        "img_s_per_core_128x64": rows[0]["main_img_s"],
        "baseline": "torchvision v1 PIL transforms (torchreid / fast-reid), same augmentations",
        "rows_title": "images per second on one core (worker: one DataLoader worker, "
        "startup included; two-view: one decode, two augmented views)",
        "rows": rows,
    }
    return Measurement(count / head["main_img_s"], peak, count / head["baseline_v1_img_s"], params)
