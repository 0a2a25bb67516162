"""A person drawn as a label map of body parts, in body coordinates.

Shapes are defined in body units (``v``: 0 at the top of the head to 1 at the feet;
``u``: horizontal offset in the same units), so one definition serves every crop size and
every detector misalignment. Each part is a masked assignment on the rows it spans, so a
person costs a few dozen small vectorised operations. The viewpoint decides what is
visible: a backpack is a block seen from the back but two straps from the front, a logo is
only on the front, long hair covers the back.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from dynamix.synth.identity import BAG, HAIR, HAT, LOWER, SHOE, SKIN, UPPER, UPPER2

FRONT, BACK, LEFT, RIGHT = range(4)
SHOULDER = 0.155
SHOE_TOP = 0.935
FOOT = 0.975
Width = float | Callable[[np.ndarray], Any]


class _Painter:
    """Paints part codes into ``sub`` (a view of the label map) on the rows a part spans."""

    def __init__(self, sub: np.ndarray, u: np.ndarray, v: np.ndarray) -> None:
        self.sub, self.u, self.v = sub, u, v  # (R, C), (R, C), (R, 1)
        self.vcol = v[:, 0]

    def rows(self, v0: float, v1: float) -> slice:
        return slice(*np.searchsorted(self.vcol, [v0, v1]))

    def band(self, code: int, v0: float, v1: float, centre: Width, half: Width) -> None:
        """Rows ``v0 <= v < v1`` within ``half`` of ``centre`` (both may depend on ``v``)."""
        rs = self.rows(v0, v1)
        if rs.start >= rs.stop:
            return
        v = self.v[rs]
        c = centre(v) if callable(centre) else centre
        h = half(v) if callable(half) else half
        self.sub[rs][np.abs(self.u[rs] - c) < h] = code

    def ellipse(self, code: int, vc: float, uc: float, rv: float, ru: float, keep=None) -> None:
        rs = self.rows(vc - rv, vc + rv)
        if rs.start >= rs.stop:
            return
        du, dv = (self.u[rs] - uc) / ru, (self.v[rs] - vc) / rv
        mask = du * du + dv * dv < 1.0
        if keep is not None:
            mask &= keep(du, dv)
        self.sub[rs][mask] = code

    def recolour(self, v0: float, v1: float, old: int, new: int, keep) -> None:
        rs = self.rows(v0, v1)
        part = self.sub[rs]
        part[(part == old) & keep(self.u[rs], self.v[rs])] = new


def draw_person(
    lab: np.ndarray,
    top: float,
    height: float,
    cx: float,
    person: dict[str, Any],
    view: int,
    phase: float,
    lean: float,
) -> None:
    """Paint one person into the ``(H, W)`` label map; geometry in pixels of the crop."""
    h_img, w_img = lab.shape
    r0, r1 = max(0, math.floor(top)), min(h_img, math.ceil(top + height))
    c0, c1 = max(0, math.floor(cx - 0.32 * height)), min(w_img, math.ceil(cx + 0.32 * height))
    if r0 >= r1 or c0 >= c1 or height < 2:
        return
    v = ((np.arange(r0, r1, dtype=np.float32) + 0.5 - top) / height)[:, None]
    u = ((np.arange(c0, c1, dtype=np.float32) + 0.5 - cx) / height)[None, :]
    p = _Painter(lab[r0:r1, c0:c1], u - np.float32(lean) * (v - 0.5), v)
    side = view in (LEFT, RIGHT)
    face = -1.0 if view == LEFT else 1.0  # direction a side view faces
    g, waist = float(person["girth"]), float(person["waist"])
    swing = math.sin(phase)
    _legs(p, person, side, face, g, waist, swing)
    torso_half = 0.08 * g if side else 0.14 * g
    p.band(
        UPPER, SHOULDER, waist + 0.015, 0.005 * face if side else 0.0, lambda v: torso_half - 0.05 * g * (v - SHOULDER)
    )
    if person["bag"] == 1:
        _backpack(p, view, face, g)
    _arms(p, person, side, g, waist, swing)
    _pattern(p, person, view, g, waist)
    if person["bag"] in (2, 3):
        _side_bag(p, person, view, face, g, waist)
    _head(p, person, view, side, face)


def _legs(p: _Painter, person, side: bool, face: float, g: float, waist: float, swing: float):
    kind = int(person["lower_type"])
    leg_code = SKIN if kind == 2 else LOWER
    span = FOOT - waist
    for s in (-1.0, 1.0):
        if side:
            stride = 0.1 * s * swing

            def centre(v, stride=stride):
                return stride * (v - waist) / span

            foot = stride + 0.015 * face
        else:
            centre = foot = s * 0.052 * g
        half = 0.045 * g if not side else 0.04 * g
        p.band(leg_code, waist, SHOE_TOP, centre, half)
        if kind == 1:  # shorts end above the knee
            p.band(SKIN, waist + 0.17, SHOE_TOP, centre, half)
        p.band(SHOE, SHOE_TOP, FOOT, foot, 0.045 * g if side else 0.04 * g)
    hip = 0.065 * g if side else 0.095 * g
    if kind == 2:
        p.band(LOWER, waist, waist + 0.2, 0.0, lambda v: hip + 0.2 * (v - waist))
    else:
        p.band(LOWER, waist, waist + 0.06, 0.0, hip)


def _backpack(p: _Painter, view: int, face: float, g: float) -> None:
    if view == BACK:
        p.band(BAG, 0.175, 0.43, 0.0, 0.085 * g)
    elif view == FRONT:
        for s in (-1.0, 1.0):
            p.band(BAG, SHOULDER, 0.36, s * 0.06 * g, 0.012)
    else:
        p.band(BAG, 0.175, 0.43, -face * (0.085 * g + 0.01), 0.05)


def _arms(p: _Painter, person, side: bool, g: float, waist: float, swing: float) -> None:
    sleeve_end = waist - 0.035 if person["long_sleeve"] else 0.27
    half = 0.034 * g
    if side:
        reach = -0.07 * swing

        def arm_centre(v):
            return reach * (v - SHOULDER) / (waist - SHOULDER)

        centres = [arm_centre]
    else:
        centres = [s * (0.14 * g + 0.028) for s in (-1.0, 1.0)]
    for c in centres:
        p.band(UPPER, SHOULDER + 0.01, sleeve_end, c, half)
        p.band(SKIN, sleeve_end, waist + 0.005, c, half * 0.9)


def _pattern(p: _Painter, person, view: int, g: float, waist: float) -> None:
    kind, period = int(person["pattern"]), float(person["period"])
    if kind == 1:
        p.recolour(SHOULDER, waist + 0.02, UPPER, UPPER2, lambda u, v: np.floor((v - SHOULDER) / period) % 2 == 1)
    elif kind == 2:
        p.recolour(
            SHOULDER,
            waist + 0.02,
            UPPER,
            UPPER2,
            lambda u, v: (np.floor((v - SHOULDER) / period) + np.floor((u + 1) / period)) % 2 == 1,
        )
    elif kind == 3 and view == FRONT:
        p.band(UPPER2, 0.2, 0.27, 0.0, 0.035 * g)


def _side_bag(p: _Painter, person, view: int, face: float, g: float, waist: float) -> None:
    s = float(person["bag_side"]) * (-1.0 if view == BACK else 1.0)
    if view in (LEFT, RIGHT):
        if person["bag"] == 3:
            p.band(BAG, SHOULDER, waist - 0.06, 0.0, 0.01)
        p.band(BAG, waist - 0.07, waist + 0.06, -0.04 * face, 0.042)
    elif person["bag"] == 2:  # handbag, held at the side
        p.band(BAG, waist - 0.03, waist + 0.09, s * (0.14 * g + 0.04), 0.04)
    else:  # shoulder bag: diagonal strap, bag at the opposite hip
        top_u, bottom_u, v_end = s * 0.09 * g, -s * 0.085 * g, waist - 0.05

        def strap(v):
            return top_u + (bottom_u - top_u) * (v - SHOULDER) / (v_end - SHOULDER)

        p.band(BAG, SHOULDER, v_end, strap, 0.011)
        p.band(BAG, waist - 0.09, waist + 0.03, -s * 0.11 * g, 0.045)


def _head(p: _Painter, person, view: int, side: bool, face: float) -> None:
    hs = float(person["head"])
    rv, ru = 0.066 * hs, 0.05 * hs
    vc = 0.008 + rv
    uc = 0.008 * face if side else 0.0
    hair_len = int(person["hair_len"])
    p.band(SKIN, vc + 0.6 * rv, SHOULDER + 0.01, uc, 0.022)
    if hair_len == 2:  # long hair falls over the shoulders
        if view == BACK:
            p.band(HAIR, vc, 0.24, 0.0, 0.062)
        elif side:
            p.band(HAIR, vc, 0.23, uc - face * 0.04, 0.028)
        else:
            for s in (-1.0, 1.0):
                p.band(HAIR, vc, 0.22, s * 0.052, 0.017)
    elif hair_len == 1 and view != FRONT:
        p.band(HAIR, vc, vc + rv + 0.015, uc - (face * 0.02 if side else 0.0), ru)
    p.ellipse(SKIN, vc, uc, rv, ru)
    if view == BACK:
        p.ellipse(HAIR, vc, uc, rv, ru)
    elif side:
        p.ellipse(HAIR, vc, uc, rv, ru, keep=lambda du, dv: (du * face < 0.1) | (dv < -0.4))
    else:
        p.ellipse(HAIR, vc, uc, rv, ru, keep=lambda du, dv: (dv < -0.35) | (np.abs(du) > 0.78))
    if person["hat"]:
        p.ellipse(HAT, vc, uc, rv * 1.05, ru * 1.08, keep=lambda du, dv: dv < -0.3)
        brim_v = vc - 0.3 * rv
        brim_c = uc + (face * 0.6 * ru if side else 0.0)
        p.band(HAT, brim_v, brim_v + 0.012, brim_c, ru * 1.2)
