"""The plan of one domain: every file to write, as a table, before any pixel is drawn.

Planning is cheap and vectorised (a few million rows are fine), so all counts, names, list
files and ground truth are known up front and written by the parent process, while the
workers only turn plan rows into pixels. A row holds everything its crop depends on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

# What a row draws: a person, a background-only junk crop, or a badly cut person (junk).
KIND_PERSON, KIND_BACKGROUND, KIND_PARTIAL = 0, 1, 2
# Random streams of a domain: [seed, domain index, stream, key]. A new kind of noise gets its
# own stream, so adding it leaves every image and every other label of a world unchanged.
STREAM_IMAGE, STREAM_SCENE, STREAM_PLAN, STREAM_FRAGMENT = 0, 1, 2, 3

# Columns a renderer reads from a plan row (``key`` seeds the image's generator).
RENDER_COLUMNS = (
    "key",
    "identity",
    "style",
    "kind",
    "view",
    "phase",
    "lean",
    "cx",
    "top",
    "height",
    "bg_x",
    "bg_y",
)


@dataclass
class DomainPlan:
    """One domain (dataset folder) of the world, fully planned."""

    name: str
    index: int  # position in the world; part of every random stream of the domain
    layout: str  # market1501 | dukemtmc | msmt17 | cuhk03-np | single_camera
    role: str  # source | target | single_camera
    fmt: str  # jpg | png
    images: pd.DataFrame  # ``path`` (relative to the domain folder) + RENDER_COLUMNS + metadata
    identities: dict[str, np.ndarray]
    styles: dict[str, np.ndarray]
    style_latent: np.ndarray  # (num_styles, K)
    style_names: list[str]  # camera or video name of each style row
    counts: dict[str, Any]
    info: dict[str, Any] = field(default_factory=dict)  # extra world.json fields
    lists: dict[str, list[str]] = field(default_factory=dict)  # list file -> lines
    ground_truth: pd.DataFrame | None = None

    def render_table(self) -> dict[str, np.ndarray]:
        """The render columns as plain arrays: cheap to slice into chunks for the workers."""
        return {c: self.images[c].to_numpy() for c in RENDER_COLUMNS}
