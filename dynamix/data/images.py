"""Images of a manifest as tensors: decoding, re-ID augmentations, two-view mode.

The dataset returns ``(image, index)``, never a label: labels of single-camera images
change during training (relabeling, merging, filtering), so the trainer looks them up by
index in its current label array at every step.

Paths are kept as one packed byte buffer plus offsets rather than a list of ``str``:
DataLoader workers forked from the main process would otherwise touch (and so copy) one
Python object per image, which at 10M images grows every worker by gigabytes.

A path is an image file, or ``lmdb://<store dir>#<key>`` for an image kept in an LMDB
store (LUPerson-NL's release, :mod:`dynamix.data.lmdb_store`): it is decoded from the
store, never dumped to a file. :func:`open_image`, :func:`open_image_bytes`,
:func:`image_nbytes` and :func:`image_exists` (defined in the torch-free
:mod:`~dynamix.data.lmdb_store`, re-exported here) are the calls that look at either, so
every reader of manifest paths (the dataset, the data gate) takes both.

Normalisation (mean/std) is part of the model, so these transforms stop at float [0, 1];
random erasing therefore fills with the ImageNet mean colour, which the model's
normalisation maps to 0, the usual re-ID choice.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.transforms import v2

from dynamix.data.lmdb_store import image_exists, image_nbytes, open_image, open_image_bytes
from dynamix.errors import DynamixError

log = logging.getLogger(__name__)

__all__ = [
    "ManifestImageDataset",
    "build_transforms",
    "image_exists",
    "image_nbytes",
    "load_rgb",
    "open_image",
    "open_image_bytes",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)

Transform = Callable[[Image.Image], torch.Tensor]


def build_transforms(
    img_size: tuple[int, int] = (256, 128),
    train: bool = True,
    *,
    flip_p: float = 0.5,
    pad: int | None = None,
    jitter: float = 0.2,
    hue: float = 0.0,
    jitter_p: float = 0.5,
    erasing_p: float = 0.5,
) -> v2.Compose:
    """PIL image → ``(3, H, W)`` float tensor in [0, 1]; ``img_size`` is ``(H, W)``.

    Train: resize, random horizontal flip, pad + random crop (``pad`` defaults to 10 px at
    height 256, scaled with the height), mild colour jitter (brightness/contrast/
    saturation ``jitter``, applied with ``jitter_p``; ``hue`` is off by default because
    the hue shift goes through HSV and costs ~4× all other steps together), random erasing
    (``erasing_p``). Geometry and colour run on uint8 (cheaper), erasing on float.
    Eval: resize only.
    """
    size = (int(img_size[0]), int(img_size[1]))
    resize = [v2.ToImage(), v2.Resize(size, antialias=True)]
    to_float = v2.ToDtype(torch.float32, scale=True)
    if not train:
        return v2.Compose([*resize, to_float])
    pad = max(1, round(10 * size[0] / 256)) if pad is None else pad
    augment = [v2.RandomHorizontalFlip(flip_p)]
    if pad > 0:
        augment += [v2.Pad(pad, fill=0), v2.RandomCrop(size)]
    if (jitter > 0 or hue > 0) and jitter_p > 0:
        jit = v2.ColorJitter(brightness=jitter, contrast=jitter, saturation=jitter, hue=hue)
        augment.append(v2.RandomApply([jit], p=jitter_p))
    erase = [v2.RandomErasing(p=erasing_p, value=list(IMAGENET_MEAN))] if erasing_p > 0 else []
    return v2.Compose([*resize, *augment, to_float, *erase])


def _pack(paths: Sequence[str | os.PathLike[str]]) -> tuple[np.ndarray, np.ndarray]:
    """All paths as one uint8 buffer (total bytes,) and offsets (N+1,)."""
    encoded = [os.fsencode(p) for p in paths]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    return np.frombuffer(b"".join(encoded), dtype=np.uint8), offsets


def load_rgb(path: str) -> Image.Image:
    """Decode ``path`` fully as RGB; an unreadable file becomes a one-line DynamixError."""
    try:
        with open_image(path) as img:
            return img.convert("RGB")  # convert() loads the whole file: truncation shows here
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise DynamixError(
            f"{path}: cannot read image ({type(exc).__name__}: {exc}); replace or delete the "
            "file and rebuild the manifest with `dynamix manifest`"
        ) from exc


class ManifestImageDataset(Dataset):
    """``dataset[i]`` → ``(image, i)``, or ``(view_1, view_2, i)`` with ``two_views``.

    ``paths`` (N,) image files or ``lmdb://`` entries (e.g. ``manifest["path"]``); ``labels`` and ``camids``
    (N,) are kept for inspection and evaluation only, since training labels change.
    ``two_views`` decodes once and augments twice independently (for the consistency
    loss between online and momentum features).
    """

    def __init__(
        self,
        paths: Sequence[str | os.PathLike[str]],
        labels: Any = None,
        camids: Any = None,
        transform: Transform | None = None,
        *,
        two_views: bool = False,
    ) -> None:
        self._buffer, self._offsets = _pack(list(paths))
        self.labels = None if labels is None else np.asarray(labels, dtype=np.int64)
        self.camids = None if camids is None else np.asarray(camids, dtype=np.int64)
        for name, arr in (("labels", self.labels), ("camids", self.camids)):
            if arr is not None and len(arr) != len(self):
                raise DynamixError(
                    f"ManifestImageDataset got {len(self)} paths but {len(arr)} {name}; "
                    "pass columns of the same manifest"
                )
        self.transform = transform if transform is not None else build_transforms(train=False)
        self.two_views = two_views

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def path(self, index: int) -> str:
        start, end = self._offsets[index], self._offsets[index + 1]
        return os.fsdecode(self._buffer[start:end].tobytes())

    def __getitem__(self, index: int) -> tuple[Any, ...]:
        img = load_rgb(self.path(index))
        if self.two_views:
            return self._tensor(img), self._tensor(img), index
        return self._tensor(img), index

    def _tensor(self, img: Image.Image) -> torch.Tensor:
        # plain Tensor, not a tv_tensors.Image: collate and the model expect plain tensors
        return self.transform(img).as_subclass(torch.Tensor)
