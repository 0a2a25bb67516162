"""Synthetic momentum features with the noise a relabeling round must fix, made in chunks.

A LUPerson-NL-like single-camera set at any size: ``num_ids`` pseudo ids, each one video's
track of one person, about ``num_images / num_ids`` images each, dimension ``dim``.

- ``dup_rate`` of the pseudo ids are a person already seen in another video (PID merging
  should join them: their centroids share the person's direction);
- ``switch_rate`` of the images show another person than their track's (relabeling should
  move them to one of that person's ids);
- ``junk_rate`` of the images are random vectors (filtering should drop them).

An image of person ``p`` in the video of pseudo id ``i`` is ``normalize(u_p + v_i + n)``:
``u_p`` a unit person direction, ``v_i`` a video bias of norm ``video_sigma`` and ``n``
noise of norm ``sigma``, so an image is ~0.75 cosine from its own centroid and a person's
centroids in two videos are ~0.93 apart (above the default ``tau_merge`` of 0.9).
Features are written chunk by chunk into one preallocated fp32 array, so the peak memory
of the generator is the output plus one chunk.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

CHUNK = 1 << 16


@dataclass
class World:
    features: np.ndarray  # (N, D) fp32, unit rows
    labels: np.ndarray  # (N,) int64 pseudo ids in [0, num_ids)
    true_ids: np.ndarray  # (N,) int64 person, −1 for junk
    num_ids: int
    num_persons: int


def unit_rows(x: np.ndarray) -> np.ndarray:
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def make_world(
    num_images: int,
    num_ids: int,
    dim: int,
    *,
    seed: int = 0,
    dup_rate: float = 0.15,
    switch_rate: float = 0.05,
    junk_rate: float = 0.03,
    sigma: float = 0.8,
    video_sigma: float = 0.15,
) -> World:
    """A :class:`World` as described in the module docstring; deterministic in ``seed``."""
    rng = np.random.default_rng(seed)
    num_dup = int(dup_rate * num_ids)
    persons = num_ids - num_dup
    person_of_id = np.concatenate([np.arange(persons), rng.integers(0, persons, num_dup)])
    person_of_id = person_of_id[rng.permutation(num_ids)]
    centres = unit_rows(rng.standard_normal((persons, dim), dtype=np.float32))
    video = rng.standard_normal((num_ids, dim), dtype=np.float32) * (video_sigma / dim**0.5)

    per_id = num_images // num_ids  # every id gets this many, the rest go to random ids
    labels = np.concatenate([np.repeat(np.arange(num_ids), per_id), rng.integers(0, num_ids, num_images % num_ids)])
    labels = labels[rng.permutation(num_images)]
    true_ids = person_of_id[labels]
    switched = rng.random(num_images) < switch_rate
    true_ids[switched] = rng.integers(0, persons, int(switched.sum()))
    junk = ~switched & (rng.random(num_images) < junk_rate)
    true_ids[junk] = -1

    features = np.empty((num_images, dim), dtype=np.float32)
    for start in range(0, num_images, CHUNK):
        rows = slice(start, start + CHUNK)
        out = features[rows]
        rng.standard_normal(out.shape, dtype=np.float32, out=out)
        out *= sigma / dim**0.5
        person = true_ids[rows]
        real = person >= 0
        out[real] += centres[person[real]] + video[labels[rows][real]]
        out[~real] *= dim**0.5 / sigma  # junk: a random direction
        unit_rows(out)
    return World(features, labels.astype(np.int64), true_ids.astype(np.int64), num_ids, persons)


def fill_bank(bank, world: World) -> None:
    """Centroids = normalised sum (= mean direction) of each pseudo id's features, with
    counts, as ``CentroidBank.init_from`` gives them. Accumulated in numpy chunk by chunk
    (sorted, ``np.add.reduceat``): setup only, kept single-threaded and bounded in memory."""
    sums = np.zeros((bank.num_ids, bank.dim), dtype=np.float32)
    for start in range(0, len(world.labels), CHUNK):
        labels = world.labels[start : start + CHUNK]
        order = np.argsort(labels, kind="stable")
        ids, first = np.unique(labels[order], return_index=True)
        sums[ids] += np.add.reduceat(world.features[start : start + CHUNK][order], first, axis=0)
    counts = np.bincount(world.labels, minlength=bank.num_ids)
    bank.centroids.copy_(torch.from_numpy(unit_rows_safe(sums)))
    bank.counts.copy_(torch.from_numpy(counts))


def unit_rows_safe(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)
