"""One crop: scene window, person, occluder, then the camera's photometric pipeline.

Only exact arithmetic touches pixels (no per-pixel ``exp``/``pow``; gamma is a lookup
table built from Python's scalar ``math``), and filtering/encoding go through Pillow's
fixed-point code, so the same plan row gives the same bytes on any machine with the same
library versions. Everything random for one image comes from that image's own generator,
so images can be drawn in any order by any worker.
"""

from __future__ import annotations

import io
from collections import OrderedDict
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

from dynamix.synth.body import draw_person
from dynamix.synth.plan import KIND_BACKGROUND, STREAM_IMAGE, STREAM_SCENE
from dynamix.synth.scene import make_scene, scene_shape

SCENE_CACHE = 48
PERSON_KEYS = (
    "pattern",
    "period",
    "long_sleeve",
    "lower_type",
    "hair_len",
    "hat",
    "bag",
    "bag_side",
    "girth",
    "waist",
    "head",
)


def image_rng(seed: int, domain: int, key: int) -> np.random.Generator:
    """The generator of one image: a pure function of (seed, domain, image key)."""
    return np.random.default_rng([seed, domain, STREAM_IMAGE, key])


def encode(img: Image.Image, fmt: str, quality: int) -> bytes:
    buf = io.BytesIO()
    if fmt == "png":
        img.save(buf, format="PNG", compress_level=1)
    else:
        img.save(buf, format="JPEG", quality=int(quality))
    return buf.getvalue()


class Renderer:
    """Draws crops of one domain; holds its identity and style tables and a scene cache."""

    def __init__(
        self,
        image_size: tuple[int, int],
        identities: dict[str, np.ndarray],
        styles: dict[str, np.ndarray],
        seed: int,
        domain: int,
    ) -> None:
        self.h, self.w = image_size
        self.identities, self.styles = identities, styles
        self.seed, self.domain = seed, domain
        self.scene_hw = scene_shape(image_size)
        self._scenes: OrderedDict[int, np.ndarray] = OrderedDict()
        self._luts: dict[int, np.ndarray] = {}
        self._cols = np.arange(self.w, dtype=np.float32) + 0.5  # (W,)
        self._rows = np.arange(self.h, dtype=np.float32) + 0.5  # (H,)

    def scene(self, style: int) -> np.ndarray:
        if style in self._scenes:
            self._scenes.move_to_end(style)
            return self._scenes[style]
        rng = np.random.default_rng([self.seed, self.domain, STREAM_SCENE, style])
        scene = make_scene(
            rng,
            self.styles["scene_rgb"][style],
            float(self.styles["scene_texture"][style]),
            self.scene_hw,
        )
        self._scenes[style] = scene
        if len(self._scenes) > SCENE_CACHE:
            self._scenes.popitem(last=False)
        return scene

    def lut(self, style: int) -> np.ndarray:
        """Gamma curve of a camera as a ``(256,)`` lookup table (scalar math: reproducible)."""
        if style not in self._luts:
            g = float(self.styles["gamma"][style])
            curve = [min(255, int(255.0 * (i / 255.0) ** g + 0.5)) for i in range(256)]
            self._luts[style] = np.array(curve, dtype=np.uint8)
        return self._luts[style]

    def render(self, row: dict[str, Any], rng: np.random.Generator) -> Image.Image:
        """The crop of one plan row (``style``, ``identity``, ``kind`` and geometry columns)."""
        style = int(row["style"])
        sh, sw = self.scene_hw
        y0 = round(float(row["bg_y"]) * (sh - self.h))
        x0 = round(float(row["bg_x"]) * (sw - self.w))
        img = self.scene(style)[y0 : y0 + self.h, x0 : x0 + self.w].copy()  # (H, W, 3)
        if int(row["kind"]) != KIND_BACKGROUND:
            self._person(img, row)
        if rng.random() < float(self.styles["occlusion"][style]):
            occlude(img, rng)
        return self._camera(img, style, rng)

    def _person(self, img: np.ndarray, row: dict[str, Any]) -> None:
        ident = int(row["identity"])
        person = {k: self.identities[k][ident] for k in PERSON_KEYS}
        top, height = float(row["top"]) * self.h, float(row["height"]) * self.h
        cx = float(row["cx"]) * self.w
        lab = np.zeros((self.h, self.w), dtype=np.uint8)
        draw_person(lab, top, height, cx, person, int(row["view"]), float(row["phase"]), float(row["lean"]))
        mask = lab > 0
        if not mask.any():
            return
        du = (self._cols - np.float32(cx)) / np.float32(height)
        shade_x = np.clip(1.0 - 9.0 * du * du, 0.62, 1.0)  # (W,) rounded body
        shade_y = np.clip(1.06 - 0.14 * (self._rows - np.float32(top)) / np.float32(height), 0.85, 1.06)
        shade = shade_y[:, None] * shade_x[None, :]  # (H, W)
        person = self.identities["palette"][ident][lab] * shade[:, :, None]  # (H, W, 3)
        np.copyto(img, person, where=mask[:, :, None])

    def _camera(self, img: np.ndarray, style: int, rng: np.random.Generator) -> Image.Image:
        st = self.styles
        flicker = np.float32(1.0 + 0.04 * rng.standard_normal())  # per-image light change
        gain = st["gain"][style] * (st["exposure"][style] * flicker)  # (3,)
        contrast = st["contrast"][style]
        x = (img * gain - 0.45) * contrast + 0.45
        x += st["noise"][style] * rng.standard_normal(img.shape, dtype=np.float32)
        out = Image.fromarray(self.lut(style)[np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8)])
        blur = float(st["blur"][style])
        if blur >= 0.3:
            out = out.filter(ImageFilter.GaussianBlur(blur))
        down = float(st["down"][style])
        if down > 1.05:
            small = (max(4, round(self.w / down)), max(8, round(self.h / down)))
            out = out.resize(small, Image.BILINEAR).resize((self.w, self.h), Image.BILINEAR)
        return out


def occlude(img: np.ndarray, rng: np.random.Generator) -> None:
    """Cover part of the crop: a passer-by at the side, an object in front, or a pole."""
    h, w = img.shape[:2]
    kind = int(rng.integers(3))
    colour = (0.1 + 0.8 * rng.random(3)).astype(np.float32)
    if kind == 0:
        width = max(1, int(rng.uniform(0.2, 0.45) * w))
        cols = slice(0, width) if rng.random() < 0.5 else slice(w - width, w)
        split = int(rng.uniform(0.4, 0.6) * h)
        img[:split, cols] = colour
        img[split:, cols] = (0.1 + 0.6 * rng.random(3)).astype(np.float32)
    elif kind == 1:
        depth = max(1, int(rng.uniform(0.2, 0.45) * h))
        x0 = int(rng.integers(0, w // 2))
        x1 = x0 + max(1, int(rng.uniform(0.5, 1.0) * w))
        img[h - depth :, x0:x1] = colour
        img[h - depth, x0:x1] = np.minimum(colour * 1.4, 1.0)
    else:
        width = max(1, int(rng.uniform(0.06, 0.14) * w))
        x = int(rng.integers(0, max(1, w - width)))
        img[:, x : x + width] = colour * np.linspace(1.1, 0.8, h, dtype=np.float32)[:, None, None]
