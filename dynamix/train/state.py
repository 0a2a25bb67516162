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


def load_checkpoint(path: str | os.PathLike[str], *, mmap: bool = False) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (onto the CPU).

    ``mmap=True`` maps the tensors instead of reading them (a quick look at ``params`` or
    ``step``). Every failure is a :class:`DynamixError` naming the file and the way out: a
    zero-byte or truncated file (a copy or disk cut short; our own writes are atomic) cannot
    be resumed, only deleted or replaced.
    """
    p = Path(path)
    if not p.is_file():
        raise DynamixError(
            f"{p}: checkpoint not found; run `dynamix train` without --resume to start a new "
            "run, or set train.out_dir to the run to resume"
        )
    fix = "delete it (or put back a complete copy) and run again, or start without --resume"
    size = p.stat().st_size
    if size == 0:
        raise DynamixError(f"{p}: checkpoint is empty (0 bytes); {fix}")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as exc:  # truncated, foreign or not a torch file at all
        raise DynamixError(
            f"{p}: cannot read checkpoint of {size} bytes, truncated or not a torch file ({_reason(exc)}); {fix}"
        ) from exc
    if not isinstance(state, dict) or state.get("format_version") != FORMAT_VERSION:
        raise DynamixError(
            f"{p}: not a DynaMix training checkpoint (format version "
            f"{state.get('format_version') if isinstance(state, dict) else None}); "
            "start without --resume"
        )
    return state


def _reason(exc: BaseException) -> str:
    """``Type: first sentence of the message``, or the type alone (EOFError's is empty):
    torch's messages run to several sentences of advice that does not apply here."""
    lines = str(exc).strip().splitlines()
    first = lines[0].split(". ")[0].rstrip(".")[:160] if lines else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
