"""Refuse sampler settings and labellings from which no batch can be composed.

Checked at construction and after every relabeling window (filtering can empty ids), each
failure as one line naming the setting to change, so a bad config stops before the first
step instead of as an IndexError deep inside a DataLoader.
"""

from __future__ import annotations

from dynamix.errors import DynamixError
from dynamix.sampling.index import IdIndex


def check_config(
    p_m: int,
    p_s: int,
    k: int,
    window: int,
    chunk: int,
    max_wait: int,
    single_camera: bool,
    matching: bool,
    has_centroids: bool,
    ids_per_video: int = 1,
) -> None:
    """Batch-composition settings that are wrong whatever the data."""
    if p_m < 1 or k < 1:
        raise DynamixError(f"sampler needs p_m ≥ 1 and k ≥ 1, got p_m={p_m} k={k}")
    if ids_per_video < 1:
        raise DynamixError(f"sampler ids_per_video={ids_per_video} must be ≥ 1")
    if not single_camera:
        return
    if p_s < 1:
        raise DynamixError(
            f"sampler p_s={p_s}: mixed batches need p_s ≥ 1; set single_camera=False for multi-camera-only batches"
        )
    if window < p_s or chunk < 1:
        raise DynamixError(
            f"sampler window={window} must be ≥ p_s={p_s} and chunk={chunk} ≥ 1; "
            "the queue chooses the p_s single-camera ids among the first `window`"
        )
    if max_wait < 0:
        raise DynamixError(f"sampler max_wait={max_wait} must be ≥ 0")
    if matching and not has_centroids:
        raise DynamixError(
            "sampler matching=True needs the centroid bank (centroids=...); "
            "pass it, or set matching=False for random mixing"
        )


def check_index(index: IdIndex, p_m: int, p_s: int, k: int, single_camera: bool, bank_rows: int | None) -> None:
    """Enough distinct ids of each kind, some id with ≥ k images, ids inside the bank."""
    kinds = [(False, p_m, "multi-camera", "p_m", "add multi-camera sources")]
    if single_camera:
        kinds.append((True, p_s, "single-camera", "p_s", "set single_camera=False or add a source"))
    for single, p, name, key, fix in kinds:
        count = int((index.single == single).sum())
        if count < p:
            raise DynamixError(
                f"sampler: {count} {name} ids with images, a batch needs {key}={p} distinct ones; lower {key} or {fix}"
            )
        most = index.max_count(single)
        if most < k:
            raise DynamixError(
                f"sampler k={k} exceeds the image count of every {name} id (largest has {most}); lower k"
            )
    if bank_rows is not None and index.num_ids > bank_rows:
        raise DynamixError(
            f"sampler labels reach id {index.num_ids - 1}, the centroid bank has {bank_rows} "
            "rows; build the bank over the same id space"
        )
