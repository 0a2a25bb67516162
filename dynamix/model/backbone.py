"""The re-ID encoder: a timm ViT, its CLS token, a BN-neck and an L2-normalised embedding.

Everything downstream (centroids, relabeling, the sampler, evaluation) compares people by
cosine similarity, so the model's one output is a unit-norm embedding. The BN-neck (as in
the strong re-ID baselines) whitens the CLS feature before normalisation; its bias is
frozen so that it cannot shift every embedding in one direction. Input normalisation
(ImageNet mean/std) lives inside the model so that an exported model takes plain [0, 1]
RGB and nobody has to remember the constants.

Weights come from a local file only: we read it ourselves rather than through timm's
``pretrained=True`` path, because timm relaxes to a non-strict load whenever the head size
differs from its config (always, with ``num_classes=0``), so a wrong file would silently
load nothing. Here any key that does not fit is an error.
"""

from __future__ import annotations

import logging
import os
import typing
from pathlib import Path
from typing import NamedTuple

import timm
import torch
import torch.nn.functional as F
from timm.models import load_state_dict
from timm.models.vision_transformer import checkpoint_filter_fn
from torch import nn

from dynamix.config import Arch, GlobalPool
from dynamix.errors import DynamixError

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# params.yaml's choices; still checked here, since a checkpoint names its own arch
ARCHITECTURES = typing.get_args(Arch)
POOLS = typing.get_args(GlobalPool)  # CLS token, or the mean of the patch tokens
# A pretrained file's classifier is dropped on purpose: the re-ID model has no head.
_IGNORED_KEYS = ("head.weight", "head.bias")


class ReIDOutput(NamedTuple):
    embedding: torch.Tensor  # (B, D) unit-norm, after the BN-neck
    pre_bn: torch.Tensor  # (B, D) CLS token before the BN-neck


class ReIDModel(nn.Module):
    """ViT → CLS token → BN-neck → L2 normalisation.

    ``forward(x)`` takes ``(B, 3, H, W)`` RGB in [0, 1] and returns the ``(B, D)`` unit-norm
    embedding; with ``return_pre_bn=True`` it returns :class:`ReIDOutput` (embedding and
    the pre-BN CLS feature, for losses that want the un-whitened feature).
    """

    def __init__(
        self,
        arch: str = "vit_small_patch16_224",
        img_size: tuple[int, int] = (256, 128),
        pretrained_path: str | os.PathLike[str] | None = None,
        drop_path_rate: float = 0.0,
        depth: int | None = None,
        global_pool: str = "token",
    ) -> None:
        super().__init__()
        if arch not in ARCHITECTURES:
            raise DynamixError(f"model arch {arch!r} is not supported; use one of {', '.join(ARCHITECTURES)}")
        if global_pool not in POOLS:
            raise DynamixError(f"model global_pool {global_pool!r}: use one of {', '.join(POOLS)}")
        self.arch = arch
        self.img_size = (int(img_size[0]), int(img_size[1]))
        self.depth, self.global_pool = depth, global_pool
        extra = {} if depth is None else {"depth": int(depth)}  # None: the arch's own depth
        self.backbone = timm.create_model(
            arch,
            pretrained=False,
            img_size=self.img_size,
            num_classes=0,
            global_pool=global_pool,
            drop_path_rate=drop_path_rate,
            **extra,
        )
        if pretrained_path is not None:
            load_backbone_weights(self.backbone, pretrained_path)
        dim = self.backbone.num_features
        self.bnneck = nn.BatchNorm1d(dim)
        self.bnneck.bias.requires_grad_(False)  # BNNeck: no learned shift
        # Not persistent: constants, not state; checkpoints stay plain backbone + neck.
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    @property
    def embed_dim(self) -> int:
        return int(self.backbone.num_features)

    def forward(self, x: torch.Tensor, return_pre_bn: bool = False) -> torch.Tensor | ReIDOutput:
        x = (x - self.mean) / self.std  # (B, 3, H, W)
        pre_bn = self.backbone(x)  # (B, D) CLS token after the final LayerNorm
        embedding = F.normalize(self.bnneck(pre_bn), dim=1)  # (B, D)
        if return_pre_bn:
            return ReIDOutput(embedding, pre_bn)
        return embedding


def load_backbone_weights(backbone: nn.Module, path: str | os.PathLike[str]) -> None:
    """Load a local timm/ViT checkpoint into ``backbone``, strictly.

    The position embedding is resampled to the model's grid (224×224 → e.g. 16×8 patches)
    by timm's ViT checkpoint filter; a classifier head in the file is ignored. Any other
    missing, unexpected or mis-shaped key raises :class:`DynamixError`.
    """
    p = Path(path)
    if not p.is_file():
        raise DynamixError(
            f"{p}: pretrained weights file not found; fix model.pretrained_path in params.yaml "
            "or set it to null to start from random weights"
        )
    try:
        state = load_state_dict(str(p))
        state = checkpoint_filter_fn(state, backbone)
    except Exception as exc:  # any unreadable or foreign file: one clear line
        raise DynamixError(
            f"{p}: cannot read as a ViT state dict ({type(exc).__name__}: {exc}); "
            "point model.pretrained_path at a timm ViT checkpoint (.pth/.safetensors)"
        ) from exc
    state = {k: v for k, v in state.items() if k not in _IGNORED_KEYS}
    own = backbone.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = sorted(
        f"{k} {tuple(state[k].shape)}≠{tuple(own[k].shape)}"
        for k in set(own) & set(state)
        if state[k].shape != own[k].shape
    )
    if missing or unexpected or mismatched:
        raise DynamixError(
            f"{p}: weights do not fit {type(backbone).__name__} "
            f"(missing {len(missing)}: {_few(missing)}; unexpected {len(unexpected)}: "
            f"{_few(unexpected)}; wrong shape {len(mismatched)}: {_few(mismatched)}); "
            "use a checkpoint of the same ViT size as model.arch"
        )
    backbone.load_state_dict(state, strict=True)
    log.info("loaded backbone weights from %s (%d tensors)", p, len(state))


def _few(keys: list[str], n: int = 3) -> str:
    if not keys:
        return "none"
    return ", ".join(keys[:n]) + (", …" if len(keys) > n else "")
