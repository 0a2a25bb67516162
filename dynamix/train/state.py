"""Checkpoints: the full training state, written atomically, read with ``weights_only``.

A checkpoint holds only tensors, numbers, strings, lists and dicts, so it loads with
``torch.load(weights_only=True)`` (no arbitrary code runs on load). The trainer decides
what goes in (:meth:`dynamix.train.trainer.Trainer.state_dict`); this module only writes
and reads files and turns every failure into one line that names the file and the fix.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from dynamix.errors import DynamixError
from dynamix.io import atomic_path

FORMAT_VERSION = 1


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write ``state`` to ``path`` atomically (a crash leaves the previous file intact)."""
    target = Path(path)
    with atomic_path(target) as tmp:
        torch.save({"format_version": FORMAT_VERSION, **state}, tmp)
    return target


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (onto the CPU)."""
    p = Path(path)
    if not p.is_file():
        raise DynamixError(
            f"{p}: checkpoint not found; run `dynamix train` without --resume to start a new "
            "run, or set train.out_dir to the run to resume"
        )
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, foreign or not a torch file at all
        raise DynamixError(
            f"{p}: cannot read checkpoint ({type(exc).__name__}: {str(exc).splitlines()[0]}); "
            "delete it and resume from another copy or start without --resume"
        ) from exc
    if not isinstance(state, dict) or state.get("format_version") != FORMAT_VERSION:
        raise DynamixError(
            f"{p}: not a DynaMix training checkpoint (format version "
            f"{state.get('format_version') if isinstance(state, dict) else None}); "
            "start without --resume"
        )
    return state
