"""ONNX export of a trained encoder, accepted only if onnxruntime agrees with PyTorch.

The graph takes ``images``: ``(B, 3, H, W)`` float32 RGB in [0, 1], resized to the
training size without cropping (the eval transform, :func:`dynamix.data.images.
build_transforms` with ``train=False``); the ImageNet mean/std normalisation is inside the
graph, as it is inside :class:`~dynamix.model.ReIDModel`. It returns ``embedding``:
``(B, D)`` L2-normalised; compare embeddings by cosine similarity. The batch axis is
dynamic.

Export uses torch's ``torch.export``-based exporter (``dynamo=True``, which needs
``onnxscript``; all offline). The graph is written to a temporary file first and moved
into place only after a parity check on real images: onnxruntime (CPU) against the
PyTorch model at batch sizes 1 and n, max abs diff ≤ 1e-4 and cosine ≥ 0.9999 per row. A
model that fails is never left at ``out``. A JSON beside it (``<out>.json`` with the
suffix replaced) records the input contract and the measured differences.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dynamix.errors import DynamixError
from dynamix.io import atomic_path, write_json_atomic
from dynamix.model import ReIDModel
from dynamix.model.backbone import IMAGENET_MEAN, IMAGENET_STD

log = logging.getLogger(__name__)

INPUT_NAME, OUTPUT_NAME = "images", "embedding"
MAX_ABS_DIFF = 1e-4
MIN_COSINE = 0.9999


class ParityError(DynamixError):
    """The ONNX graph computes something else than the PyTorch model."""


def load_images(paths: Sequence[str], img_size: tuple[int, int]) -> torch.Tensor:
    """(n, 3, H, W) float32 in [0, 1]: the eval transform of ``paths``."""
    from dynamix.data.images import build_transforms, load_rgb

    transform = build_transforms(img_size, train=False)
    return torch.stack([transform(load_rgb(str(p))).as_subclass(torch.Tensor) for p in paths])


def check_parity(
    onnx_path: str | os.PathLike[str],
    model: ReIDModel,
    images: torch.Tensor,
    batch_sizes: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Run ``images`` (n, 3, H, W) through onnxruntime and ``model``; raise if they differ.

    ``batch_sizes`` default to (1, n): the first image alone, then all of them in one
    batch, which also proves the batch axis is dynamic.
    """
    import onnxruntime as ort

    n = len(images)
    sizes = sorted({1, n}) if batch_sizes is None else list(batch_sizes)
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    model = model.eval().cpu()
    worst_abs, worst_cos = 0.0, 1.0
    for b in sizes:
        x = images[:b].float().cpu()  # (b, 3, H, W)
        with torch.no_grad():
            ref = model(x).numpy()  # (b, D)
        (got,) = session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})
        if got.shape != ref.shape:
            raise ParityError(
                f"{onnx_path}: ONNX output has shape {got.shape} at batch {b}, PyTorch "
                f"{ref.shape}; the export is broken (dynamic batch axis lost?)"
            )
        cos = (got * ref).sum(1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(ref, axis=1))
        worst_abs = max(worst_abs, float(np.abs(got - ref).max()))
        worst_cos = min(worst_cos, float(cos.min()))
    if not (worst_abs <= MAX_ABS_DIFF and worst_cos >= MIN_COSINE):  # NaN fails too
        raise ParityError(
            f"{onnx_path}: onnxruntime disagrees with PyTorch on {n} images (max abs diff "
            f"{worst_abs:.3g}, limit {MAX_ABS_DIFF}; min cosine {worst_cos:.6f}, limit "
            f"{MIN_COSINE}); the model was not exported"
        )
    return {
        "images": n,
        "batch_sizes": sizes,
        "max_abs_diff": worst_abs,
        "min_cosine": worst_cos,
        "max_abs_diff_limit": MAX_ABS_DIFF,
        "min_cosine_limit": MIN_COSINE,
        "runtime": f"onnxruntime {ort.__version__} CPUExecutionProvider",
    }


def export_onnx(
    model: ReIDModel,
    out: str | os.PathLike[str],
    sample_paths: Sequence[str],
    *,
    meta: dict[str, Any] | None = None,
    opset: int | None = None,
) -> dict[str, Any]:
    """Export ``model`` to ``out`` (.onnx) after a parity check on ``sample_paths``.

    Returns the report also written to ``out`` with suffix ``.json``; ``meta`` (e.g.
    checkpoint, step, encoder) is copied into it.
    """
    import onnx

    target = Path(out)
    if target.suffix != ".onnx":
        raise DynamixError(f"{target}: the exported model file must end in .onnx")
    if not sample_paths:
        raise DynamixError("export needs at least one real image for the parity check")
    model = model.eval().cpu()
    h, w = model.img_size
    images = load_images(sample_paths, (h, w))  # (n, 3, H, W)
    # An example batch of 2: a batch of 1 would let torch.export specialise the axis to 1.
    example = images[:2] if len(images) >= 2 else images.repeat(2, 1, 1, 1)
    batch = torch.export.Dim("batch", min=1)
    with atomic_path(target) as tmp:
        program = torch.onnx.export(
            model,
            (example,),
            dynamo=True,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes=({0: batch},),
            opset_version=opset,
            external_data=False,
            verbose=False,
        )
        program.save(str(tmp), external_data=False)
        parity = check_parity(tmp, model, images)
        opsets = {o.domain or "ai.onnx": o.version for o in onnx.load(str(tmp)).opset_import}
    report = {
        **(meta or {}),
        "onnx": target.name,
        "arch": model.arch,
        "input": {
            "name": INPUT_NAME,
            "shape": ["batch", 3, h, w],
            "dtype": "float32",
            "layout": "NCHW, RGB",
            "range": [0.0, 1.0],
            "resize": f"to {h}x{w} (bilinear, antialias), no crop",
        },
        "normalization": {
            "mean": list(IMAGENET_MEAN),
            "std": list(IMAGENET_STD),
            "where": "inside the graph: feed [0, 1] RGB",
        },
        "output": {
            "name": OUTPUT_NAME,
            "shape": ["batch", model.embed_dim],
            "dtype": "float32",
            "l2_normalized": True,
            "compare_by": "cosine",
        },
        "opset": opsets,
        "parity": parity,
        "versions": _versions(),
    }
    write_json_atomic(target.with_suffix(".json"), report)
    log.info(
        "exported %s (max abs diff %.2g, min cosine %.7f on %d images)",
        target,
        parity["max_abs_diff"],
        parity["min_cosine"],
        parity["images"],
    )
    return report


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    return {pkg: version(pkg) for pkg in ("torch", "onnx", "onnxruntime", "onnxscript")}
