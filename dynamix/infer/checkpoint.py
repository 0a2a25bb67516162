"""A trained encoder out of a training checkpoint, ready for inference.

``dynamix train`` writes the full training state (``last.pt``/``best.pt``, see
:mod:`dynamix.train.state`): optimizer, centroid bank, RNGs and two encoders. Inference
needs one encoder and the architecture it was trained with, which the checkpoint carries in
its ``params`` (``model.arch``, ``model.img_height``, ``model.img_width``), so a checkpoint
is self-contained: the current ``params.yaml`` may have moved on since the run.

The file is read with ``torch.load(weights_only=True)``: no code in it can run. Every
failure (missing file, a foreign ``.pt``, weights that do not fit) is one line naming the
file and what to pass instead.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dynamix.errors import DynamixError
from dynamix.model import ReIDModel
from dynamix.train.state import FORMAT_VERSION

log = logging.getLogger(__name__)

ENCODERS = ("momentum", "online")
_MOMENTUM_PREFIX = "module."  # MomentumEncoder keeps the copy as ``self.module``
_HINT = "pass last.pt or best.pt written by `dynamix train`"


@dataclass(frozen=True)
class CheckpointInfo:
    """What a checkpoint says about the encoder it holds (for reports and export metadata)."""

    path: str
    step: int
    encoder: str
    arch: str
    img_size: tuple[int, int]  # (H, W) the model was trained at
    depth: int | None = None  # transformer blocks; None = the arch's own
    global_pool: str = "token"


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The training state in ``path`` (on the CPU), checked to hold encoders and params."""
    p = Path(path)
    if not p.is_file():
        raise DynamixError(f"{p}: checkpoint not found; {_HINT} (e.g. runs/train/best.pt)")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, foreign pickle, not a torch file at all
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise DynamixError(
            f"{p}: cannot read as a weights-only torch file ({type(exc).__name__}: {first}); {_HINT}"
        ) from exc
    version = state.get("format_version") if isinstance(state, dict) else None
    missing = [k for k in ("model", "momentum", "params") if not isinstance(state, dict) or k not in state]
    if version != FORMAT_VERSION or missing:
        raise DynamixError(
            f"{p}: not a DynaMix training checkpoint (format_version {version}, missing "
            f"{', '.join(missing) or 'nothing'}); {_HINT}"
        )
    return state


def checkpoint_info(state: dict[str, Any], path: str | os.PathLike[str], which: str) -> CheckpointInfo:
    """Architecture and step of ``state``; a one-line error if its params lack them."""
    model = state["params"].get("model") if isinstance(state["params"], dict) else None
    try:
        arch = str(model["arch"])
        img_size = (int(model["img_height"]), int(model["img_width"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise DynamixError(
            f"{path}: checkpoint params lack model.arch/img_height/img_width ({exc!r}); {_HINT}"
        ) from exc
    depth = model.get("depth")
    pool = str(model.get("global_pool") or "token")
    return CheckpointInfo(
        str(path),
        int(state.get("step", 0)),
        which,
        arch,
        img_size,
        None if depth is None else int(depth),
        pool,
    )


def encoder_weights(state: dict[str, Any], which: str) -> dict[str, torch.Tensor]:
    """The ReIDModel state dict of the online model or of the momentum copy."""
    if which not in ENCODERS:
        raise DynamixError(f"encoder must be one of {', '.join(ENCODERS)}, not {which!r}")
    if which == "online":
        return dict(state["model"])
    n = len(_MOMENTUM_PREFIX)
    return {k[n:]: v for k, v in state["momentum"].items() if k.startswith(_MOMENTUM_PREFIX)}


def build_encoder(
    state: dict[str, Any],
    path: str | os.PathLike[str],
    which: str = "momentum",
    device: torch.device | str = "cpu",
) -> tuple[ReIDModel, CheckpointInfo]:
    """ReIDModel of the checkpoint's architecture with ``which`` encoder's weights, eval mode."""
    info = checkpoint_info(state, path, which)
    weights = encoder_weights(state, which)
    model = ReIDModel(
        info.arch,
        info.img_size,
        pretrained_path=None,
        drop_path_rate=0.0,
        depth=info.depth,
        global_pool=info.global_pool,
    )
    own = model.state_dict()
    missing = sorted(set(own) - set(weights))
    unexpected = sorted(set(weights) - set(own))
    wrong = sorted(k for k in set(own) & set(weights) if own[k].shape != weights[k].shape)
    if missing or unexpected or wrong:
        raise DynamixError(
            f"{path}: {which} encoder weights do not fit {info.arch} at {info.img_size} "
            f"(missing {len(missing)}: {_few(missing)}; unexpected {len(unexpected)}: "
            f"{_few(unexpected)}; wrong shape {len(wrong)}: {_few(wrong)}); {_HINT}"
        )
    model.load_state_dict(weights, strict=True)
    model.requires_grad_(False)
    model.eval().to(device)
    log.info("loaded %s encoder (%s, %dx%d, step %d) from %s", which, info.arch, *info.img_size, info.step, path)
    return model, info


def load_encoder(
    checkpoint_path: str | os.PathLike[str],
    which: str = "momentum",
    device: torch.device | str = "cpu",
) -> ReIDModel:
    """The ``which`` encoder ("momentum" or "online") of a training checkpoint, in eval mode.

    Its ``forward`` takes ``(B, 3, H, W)`` RGB in [0, 1] at ``model.img_size`` and returns
    ``(B, D)`` unit-norm embeddings.
    """
    model, _ = build_encoder(read_checkpoint(checkpoint_path), checkpoint_path, which, device)
    return model


def _few(keys: list[str], n: int = 3) -> str:
    return ", ".join(keys[:n]) + (", …" if len(keys) > n else "") if keys else "none"
