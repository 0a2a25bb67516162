"""Counts that world.json promises, computed from the very tables the files came from.

Loader tests round-trip against these numbers, so they follow the loader rules: junk
(pid -1) is dropped, distractors (pid 0) stay in the gallery but are not an identity.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

PERSON, DISTRACTOR, JUNK = "person", "distractor", "junk"
# Rates a SingleCameraSpec requests and realized_noise measures (world.json ``noise``).
NOISE_RATES = ("multi_video_rate", "switch_rate", "junk_rate", "fragment_rate")


def split_counts(df: pd.DataFrame, splits: Sequence[str]) -> dict[str, int]:
    """``<split>_images``/``<split>_ids`` (+ distractor and junk images) of a labelled table."""
    counts: dict[str, int] = {}
    for split in splits:
        rows = df[(df["split"] == split) & (df["label"] != JUNK)]
        counts[f"{split}_images"] = len(rows)
        counts[f"{split}_ids"] = int(rows.loc[rows["label"] == PERSON, "pid"].nunique())
    counts["distractor_images"] = int((df["label"] == DISTRACTOR).sum())
    counts["junk_images"] = int((df["label"] == JUNK).sum())
    return counts


def single_camera_counts(gt: pd.DataFrame) -> dict[str, int]:
    return {
        "num_videos": int(gt["video"].nunique()),
        "num_tracklets": int(gt["tracklet"].nunique()),
        "num_images": len(gt),
        "num_pseudo_ids": int(gt["pseudo_pid"].nunique()),
        "train_images": len(gt),
        "train_ids": int(gt["pseudo_pid"].nunique()),
    }


def realized_noise(gt: pd.DataFrame) -> dict[str, Any]:
    """Noise rates measured on the ground-truth table, with the same definitions as requested.

    ``multi_video_rate``: true persons seen in >= 2 videos / true persons;
    ``switch_rate``: tracklets holding >= 1 switched image / tracklets;
    ``junk_rate``: junk images / images;
    ``fragment_rate``: appearances (true person, video) whose clean images carry >= 2 pseudo
    ids / appearances. Clean images only: after a switch a tracklet shows another person
    under its own pseudo id, which is a switch, not a fragment. Every tracklet starts clean,
    so every piece of a split appearance is seen. Measured from the labels, not from the
    ``fragmented`` flag, so a bug in either shows up as a mismatch.
    """
    people = gt[gt["true_id"] >= 0]
    videos_per_person = people.groupby("true_id")["video"].nunique()
    switched = gt.loc[gt["noise"] == "switch", "tracklet"].nunique()
    n_tracklets = gt["tracklet"].nunique()
    clean = gt[gt["noise"] == "clean"]
    ids_per_appearance = clean.groupby(["true_id", "video"])["pseudo_pid"].nunique()
    return {
        "multi_video_rate": float((videos_per_person >= 2).mean()),
        "switch_rate": float(switched / n_tracklets),
        "junk_rate": float((gt["noise"] == "junk").mean()),
        "fragment_rate": float((ids_per_appearance >= 2).mean()),
        "switched_image_fraction": float((gt["noise"] == "switch").mean()),
        "num_true_ids": len(videos_per_person),
        "num_appearances": len(ids_per_appearance),
        "num_pseudo_ids": int(gt["pseudo_pid"].nunique()),
        "num_videos": int(gt["video"].nunique()),
        "num_tracklets": int(n_tracklets),
        "num_images": len(gt),
    }
