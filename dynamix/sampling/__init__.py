"""Data Sampling Module: queue-based mixed mini-batches (multi- + single-camera ids)."""

from dynamix.sampling.cycle import IdCycle, video_spread_order
from dynamix.sampling.index import IdIndex, pick_images
from dynamix.sampling.matching import match_nearest
from dynamix.sampling.queue import CandidateQueue
from dynamix.sampling.sampler import MULTI, SINGLE, MixedBatchSampler

__all__ = [
    "MULTI",
    "SINGLE",
    "CandidateQueue",
    "IdCycle",
    "IdIndex",
    "MixedBatchSampler",
    "match_nearest",
    "pick_images",
    "video_spread_order",
]
