"""The multi-loss objective: centroid (InfoNCE), batch-hard triplet and view consistency.

The optional ID cross-entropy on multi-camera ids is plain ``nn.CrossEntropyLoss``.
"""

from dynamix.losses.centroid import CentroidLoss, sample_negatives
from dynamix.losses.consistency import ConsistencyLoss
from dynamix.losses.triplet import TripletLoss

__all__ = ["CentroidLoss", "ConsistencyLoss", "TripletLoss", "sample_negatives"]
