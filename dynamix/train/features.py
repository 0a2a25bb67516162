"""The one no-grad feature pass: bank initialisation, relabeling, evaluation and ``extract``.

Every consumer embeds a list of image files with the eval transform (resize only), so a
feature depends only on the image and the encoder, never on augmentation randomness, and
the features ``dynamix extract`` writes are the ones the trainer's metrics came from.
:func:`iter_features` yields them batch by batch (``extract`` streams them to disk);
:func:`extract_features` concatenates them (the trainer and evaluation hold them in RAM).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import nn
from torch.utils.data import DataLoader

from dynamix.data.images import ManifestImageDataset, build_transforms


@torch.no_grad()
def iter_features(
    model: nn.Module,
    paths: Sequence[str],
    *,
    img_size: tuple[int, int],
    batch_size: int = 128,
    num_workers: int = 0,
    device: torch.device | str = "cpu",
    amp: bool = False,
) -> Iterator[torch.Tensor]:
    """(b, D) fp32 CPU embeddings of consecutive batches of ``paths``, in input order.

    The model runs in eval mode and gets its previous mode back when the pass ends.
    """
    dataset = ManifestImageDataset(list(paths), transform=build_transforms(img_size, train=False))
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        generator=torch.Generator(),  # an iterator must not draw from the global RNG
    )
    device = torch.device(device)
    was_training = model.training
    model.eval()
    try:
        for images, _ in loader:
            images = images.to(device, non_blocking=True)  # (b, 3, H, W) in [0, 1]
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                yield model(images).float().cpu()
    finally:
        model.train(was_training)


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
    out = list(
        iter_features(
            model,
            paths,
            img_size=img_size,
            batch_size=batch_size,
            num_workers=num_workers,
            device=device,
            amp=amp,
        )
    )
    if not out:
        return torch.zeros(0, 0)
    return torch.cat(out)
