"""Input checks shared by every evaluation entry point.

A mismatched length or a NaN in a distance matrix does not crash the ranking code: it
silently produces wrong metrics. So every public function checks its arrays here first and
raises :class:`EvaluationInputError` with one line that names the array at fault.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np
import torch

from dynamix.errors import DynamixError

log = logging.getLogger(__name__)


class EvaluationInputError(DynamixError, ValueError):
    """Arrays given to an evaluation function do not fit together (shape, dtype, NaN)."""


def as_id_array(values: Any, name: str, expected_len: int, what: str) -> np.ndarray:
    """Return ``values`` as a 1-D int64 array of length ``expected_len``.

    ``what`` says where the expected length comes from, for the error message
    (e.g. ``"distmat has 12 query rows"``).
    """
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise EvaluationInputError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.dtype.kind not in "iub":
        raise EvaluationInputError(f"{name} must hold integers, got dtype {arr.dtype}")
    if len(arr) != expected_len:
        raise EvaluationInputError(f"{name} has {len(arr)} entries but {what}")
    # A copy when read-only (e.g. from pandas): these small arrays become torch tensors.
    return arr.astype(np.int64, copy=not arr.flags.writeable)


def tensor_view(arr: np.ndarray) -> torch.Tensor:
    """``torch.from_numpy`` without a copy, also for read-only arrays (pandas, mmap).

    Evaluation never writes into its inputs, so torch's non-writable warning does not apply.
    """
    if arr.flags.writeable:
        return torch.from_numpy(arr)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(arr)


def check_ids(
    q_pids: Any, g_pids: Any, q_camids: Any, g_camids: Any, num_q: int, num_g: int, source: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Check the four id arrays against ``num_q`` queries and ``num_g`` gallery items."""
    qs = f"{source} has {num_q} queries"
    gs = f"{source} has {num_g} gallery items"
    return (
        as_id_array(q_pids, "q_pids", num_q, qs),
        as_id_array(g_pids, "g_pids", num_g, gs),
        as_id_array(q_camids, "q_camids", num_q, qs),
        as_id_array(g_camids, "g_camids", num_g, gs),
    )


def check_max_rank(max_rank: int) -> int:
    """``max_rank`` must be a positive integer (it is the CMC length)."""
    if isinstance(max_rank, bool) or int(max_rank) != max_rank or max_rank < 1:
        raise EvaluationInputError(f"max_rank must be a positive integer, got {max_rank!r}")
    return int(max_rank)


def narrow_if_exact(arr: np.ndarray) -> np.ndarray:
    """float64 → float32 when every value is exactly a float32 (e.g. an upcast fp32 matrix).

    Same values, so the same order and ties: the fast float32 ranking path gives exactly
    the float64 answer. A 4096-value sample rejects true float64 data cheaply.
    """
    if arr.dtype != np.float64 or not arr.size:
        return arr
    sample = arr.reshape(-1)[:4096]
    if not np.array_equal(sample.astype(np.float32), sample):
        return arr
    narrow = arr.astype(np.float32)
    return narrow if np.array_equal(narrow, arr) else arr


def check_distmat(distmat: Any) -> np.ndarray:
    """Return ``distmat`` as a C-contiguous 2-D float array (float32 stays float32).

    Integers and half floats are widened losslessly (int → float64, half → float32), and
    float64 holding only float32 values is narrowed losslessly (:func:`narrow_if_exact`).
    NaN is rejected: numpy's argsort would silently rank it last, hiding an upstream bug.
    """
    if isinstance(distmat, torch.Tensor):
        if distmat.dtype in (torch.float16, torch.bfloat16):
            distmat = distmat.float()
        distmat = distmat.detach().cpu().numpy()
    arr = np.asarray(distmat)
    if arr.ndim != 2:
        raise EvaluationInputError(f"distmat must be 2-D (queries × gallery), got {arr.shape}")
    if arr.dtype.kind in "iub":
        arr = arr.astype(np.float64)
    elif arr.dtype == np.float16:
        arr = arr.astype(np.float32)
    elif arr.dtype not in (np.float32, np.float64):
        raise EvaluationInputError(f"distmat must hold real numbers, got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr)
    if arr.size and np.isnan(arr.min()):  # min propagates NaN: one fast pass
        raise EvaluationInputError(
            f"distmat contains {int(np.isnan(arr).sum())} NaN values; "
            "fix the features or distance computation that produced them"
        )
    return narrow_if_exact(arr)


def check_features(feats: Any, name: str) -> torch.Tensor:
    """Return ``feats`` as a 2-D float tensor (on its current device); reject NaN/inf."""
    t = feats if isinstance(feats, torch.Tensor) else tensor_view(np.asarray(feats))
    if t.ndim != 2:
        raise EvaluationInputError(f"{name} must be 2-D (items × dim), got {tuple(t.shape)}")
    if not (t.dtype.is_floating_point or t.dtype in (torch.int32, torch.int64)):
        raise EvaluationInputError(f"{name} must hold real numbers, got dtype {t.dtype}")
    if not bool(torch.isfinite(t).all()):
        raise EvaluationInputError(f"{name} contains NaN or infinite values")
    return t
