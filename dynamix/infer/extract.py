"""Embeddings of a folder of images or of a manifest, streamed into one ``.npz`` file.

The file is a plain numpy ``.npz`` (loads with ``np.load(path)``, no pickle):

============  ==============  =====================================================
key           shape / dtype   meaning
============  ==============  =====================================================
features      (N, D) float32  unit-norm embeddings, row i belongs to ``paths[i]``
paths         (N,) str        image files, in input order
pid, camid    (N,) int64      only when read from a manifest
checkpoint    () str          the checkpoint the encoder came from
encoder       () str          ``momentum`` or ``online``
step          () int64        training step of the checkpoint
img_size      (2,) int64      (H, W) the images were resized to
============  ==============  =====================================================

Features are written batch by batch straight into the archive, so memory stays at one
batch whatever N is (10M images × 768 floats would be 30 GB in RAM). Images go through the
same feature pass as the trainer's evaluation (:func:`dynamix.train.features.iter_features`),
so a feature here equals the one the trainer's metrics were computed from.
"""

from __future__ import annotations

import logging
import os
import zipfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from dynamix.errors import DynamixError
from dynamix.io import atomic_path
from dynamix.train.features import iter_features

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def folder_images(folder: str | os.PathLike[str]) -> list[str]:
    """Every .jpg/.jpeg/.png under ``folder`` (recursive), sorted by relative path."""
    root = Path(folder)
    if not root.is_dir():
        raise DynamixError(f"{root}: no such folder; pass --folder DIR holding .jpg/.png images")
    found = [p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
    if not found:
        raise DynamixError(f"{root}: no .jpg/.jpeg/.png images found (searched recursively)")
    return [str(p) for p in sorted(found, key=lambda p: p.relative_to(root).as_posix())]


def manifest_images(manifest: str | os.PathLike[str], split: str | None = None) -> Any:
    """Rows of a manifest (a pandas DataFrame), only ``split`` if given, in file order."""
    from dynamix.data.manifest import read_manifest

    df = read_manifest(manifest)
    if split is not None:
        splits = sorted(df["split"].unique())
        df = df[df["split"] == split].reset_index(drop=True)
        if df.empty:
            raise DynamixError(f"{manifest}: no rows with split {split!r}; it has {', '.join(splits) or 'none'}")
    if df.empty:
        raise DynamixError(f"{manifest}: manifest is empty; rebuild it with `dynamix manifest`")
    return df


def write_features(
    out: str | os.PathLike[str],
    batches: Iterator[torch.Tensor],
    num: int,
    dim: int,
    extra: dict[str, np.ndarray],
    progress: Callable[[int], None] | None = None,
) -> Path:
    """Stream ``num`` rows of ``(b, dim)`` batches into ``out`` (.npz) with ``extra`` arrays."""
    target = Path(out)
    if target.suffix != ".npz":
        raise DynamixError(f"{target}: the features file must end in .npz")
    header = np.lib.format.header_data_from_array_1_0(np.empty((0, dim), dtype="<f4"))
    header["shape"] = (num, dim)
    with atomic_path(target) as tmp, zipfile.ZipFile(tmp, "w", allowZip64=True) as zf:
        written = 0
        with zf.open("features.npy", "w", force_zip64=True) as fh:
            np.lib.format.write_array_header_2_0(fh, header)
            for batch in batches:
                fh.write(batch.numpy().astype("<f4", copy=False).tobytes())
                written += len(batch)
                if progress is not None:
                    progress(len(batch))
        if written != num:
            raise RuntimeError(f"wrote {written} feature rows, expected {num}")
        for name, arr in extra.items():
            with zf.open(f"{name}.npy", "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, np.asarray(arr), allow_pickle=False)
    return target


def extract_to_file(
    model: nn.Module,
    paths: Sequence[str],
    out: str | os.PathLike[str],
    *,
    meta: dict[str, Any],
    labels: dict[str, np.ndarray] | None = None,
    batch_size: int = 128,
    num_workers: int = 0,
    device: torch.device | str = "cpu",
    amp: bool = False,
    progress: Callable[[int], None] | None = None,
) -> Path:
    """Embed ``paths`` with ``model`` (a ReIDModel) into ``out``; see the module docstring.

    ``meta`` holds ``checkpoint``, ``encoder``, ``step`` (scalars); ``labels`` optional
    ``pid``/``camid`` arrays (N,) aligned with ``paths``.
    """
    img_size = tuple(model.img_size)
    extra: dict[str, np.ndarray] = {"paths": np.asarray([str(p) for p in paths], dtype=str)}
    for name, values in (labels or {}).items():
        extra[name] = np.asarray(values, dtype=np.int64)
        if len(extra[name]) != len(paths):
            raise DynamixError(f"{name}: {len(extra[name])} values for {len(paths)} images")
    extra.update(
        checkpoint=np.asarray(str(meta["checkpoint"])),
        encoder=np.asarray(str(meta["encoder"])),
        step=np.asarray(int(meta["step"]), dtype=np.int64),
        img_size=np.asarray(img_size, dtype=np.int64),
    )
    batches = iter_features(
        model,
        paths,
        img_size=img_size,
        batch_size=batch_size,
        num_workers=num_workers,
        device=device,
        amp=amp,
    )
    path = write_features(out, batches, len(paths), model.embed_dim, extra, progress)
    log.info("wrote %d × %d features to %s", len(paths), model.embed_dim, path)
    return path
