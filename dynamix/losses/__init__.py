"""The multi-loss objective: centroid (InfoNCE), batch-hard triplet, view consistency and
the optional ID cross-entropy (cosine classifier) on multi-camera ids.
"""

from dynamix.losses.centroid import CentroidLoss, sample_negatives
from dynamix.losses.consistency import ConsistencyLoss
from dynamix.losses.identity import IdentityClassifierLoss
from dynamix.losses.triplet import TripletLoss

__all__ = [
    "CentroidLoss",
    "ConsistencyLoss",
    "IdentityClassifierLoss",
    "TripletLoss",
    "sample_negatives",
]
