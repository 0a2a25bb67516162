"""No-grad feature passes: bank initialisation, relabeling rounds and evaluation.

All three embed a list of image files with the eval transform (resize only), so a
feature depends only on the image and the encoder, never on augmentation randomness.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.data import DataLoader

from dynamix.data.images import ManifestImageDataset, build_transforms


@torch.no_grad()
def extract_features(
    model: nn.Module,
    paths: Sequence[str],
    *,
    img_size: tuple[int, int],
    batch_size: int = 128,
    num_workers: int = 0,
    device: torch.device | str = "cpu",
    amp: bool = False,
) -> torch.Tensor:
    """(N, D) fp32 unit-norm embeddings of ``paths``, on the CPU, in input order."""
    dataset = ManifestImageDataset(list(paths), transform=build_transforms(img_size, train=False))
    loader = DataLoader(
        dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
        generator=torch.Generator(),  # an iterator must not draw from the global RNG
    )  # fmt: skip
    device = torch.device(device)
    was_training = model.training
    model.eval()
    out = []
    try:
        for images, _ in loader:
            images = images.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                out.append(model(images).float().cpu())
    finally:
        model.train(was_training)
    if not out:
        return torch.zeros(0, 0)
    return torch.cat(out)
