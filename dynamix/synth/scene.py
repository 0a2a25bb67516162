"""Backgrounds: one scene per camera (or video), from which every crop takes a window.

A camera films one place, so its crops share walls, floor and clutter; drawing the scene
once per camera and cutting windows from it gives that consistency for free and makes a
background cost nothing per image. The scene is wider than a crop so that detections at
different places see different parts of it.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from dynamix.synth.style import hsv_to_rgb


def scene_shape(image_size: tuple[int, int]) -> tuple[int, int]:
    h, w = image_size
    return round(1.25 * h), 8 * w


def make_scene(rng: np.random.Generator, rgb: np.ndarray, texture: float, shape: tuple[int, int]) -> np.ndarray:
    """A ``(SH, SW, 3)`` float32 scene: wall over floor, vertical structures, low-freq texture."""
    sh, sw = shape
    horizon = int(rng.uniform(0.35, 0.7) * sh)
    wall = np.clip(rgb * rng.uniform(0.85, 1.15) + 0.03 * rng.standard_normal(3), 0.02, 1.0)
    grey = rgb.mean() * np.ones(3)
    floor = np.clip((0.5 * rgb + 0.5 * grey) * rng.uniform(0.6, 1.05), 0.02, 1.0)
    y = (np.arange(sh, dtype=np.float32) / sh)[:, None]
    ramp_wall = 1.1 - 0.2 * y
    ramp_floor = 0.85 + 0.3 * (y - horizon / sh)
    scene = np.where(
        (np.arange(sh) < horizon)[:, None, None],
        (wall * ramp_wall)[:, None, :],
        (floor * ramp_floor)[:, None, :],
    ) * np.ones((1, sw, 1), dtype=np.float32)
    for _ in range(int(rng.integers(6, 16))):
        x0 = int(rng.integers(0, sw))
        x1 = min(sw, x0 + int(rng.uniform(0.02, 0.12) * sw))
        y0 = int(rng.uniform(0.0, 0.5) * horizon)
        y1 = min(sh, horizon + int(rng.uniform(-0.1, 0.15) * sh))
        if rng.random() < 0.5:  # part of the building, in the scene's own colours
            colour = wall * rng.uniform(0.6, 1.4)
        else:  # an object (car, tree, sign): any hue, at the scene's light level
            colour = hsv_to_rgb(rng.random(), rng.uniform(0.1, 0.5), rgb.mean() * rng.uniform(0.6, 1.6))
        colour = np.clip(colour, 0.0, 1.0)
        scene[y0:y1, x0:x1] = colour
    period = int(rng.integers(4, 12))
    scene[horizon::period] *= np.float32(1.0 - texture)
    small = rng.random((sh // 6 + 2, sw // 6 + 2)).astype(np.float32)
    field = np.asarray(Image.fromarray(small).resize((sw, sh), Image.BILINEAR))
    scene *= (1.0 + 2.0 * texture * (field - 0.5))[:, :, None]
    return np.clip(scene, 0.0, 1.0).astype(np.float32)
