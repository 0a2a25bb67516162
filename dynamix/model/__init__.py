"""The encoder (timm ViT + BN-neck) and its momentum (EMA) copy."""

from dynamix.model.backbone import ReIDModel, ReIDOutput, load_backbone_weights
from dynamix.model.momentum import MomentumEncoder

__all__ = ["MomentumEncoder", "ReIDModel", "ReIDOutput", "load_backbone_weights"]
