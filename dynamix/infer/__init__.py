"""Inference with a trained checkpoint: encoder loading, feature files, evaluation, ONNX.

Public API (imported lazily so that ``dynamix --help`` does not import torch):

- :func:`load_encoder`: the momentum or online encoder of ``last.pt``/``best.pt``
- :func:`evaluate_checkpoint`: target-domain metrics, the same numbers the trainer reports
- :func:`extract_to_file`: embeddings of image paths streamed into an ``.npz``
- :func:`export_onnx` / :func:`check_parity`: ONNX export checked against onnxruntime
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "load_encoder": "dynamix.infer.checkpoint",
    "read_checkpoint": "dynamix.infer.checkpoint",
    "build_encoder": "dynamix.infer.checkpoint",
    "evaluate_checkpoint": "dynamix.infer.evaluate",
    "extract_to_file": "dynamix.infer.extract",
    "folder_images": "dynamix.infer.extract",
    "manifest_images": "dynamix.infer.extract",
    "export_onnx": "dynamix.infer.export",
    "check_parity": "dynamix.infer.export",
    "ParityError": "dynamix.infer.export",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
