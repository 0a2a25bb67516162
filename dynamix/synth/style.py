"""Camera styles: a latent vector per camera or video, mapped to rendering parameters.

Every style lives in one standardised latent space (one axis per visual factor, 0 = a
typical camera, +-2 = extreme), so "narrow around a domain centre" versus "broad over the
whole space" is a statement about spreads in the same units, and the spread of the
single-camera videos can be compared directly with the spread of a source's cameras.

Parameters derived here are rounded to 1e-4: the transcendental functions behind them may
differ in the last bit between CPUs, and rounding keeps the written bytes identical.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from dynamix.errors import DynamixError

STYLE_DIMS = (
    "scene_hue",  # background colour
    "scene_sat",
    "scene_val",
    "scene_texture",  # clutter/texture strength of the background
    "temperature",  # colour cast: warm (+) / cool (-)
    "tint",  # colour cast: green (+) / magenta (-)
    "exposure",
    "contrast",
    "gamma",  # > 0 darkens mid-tones
    "blur",
    "noise",
    "resolution",  # > 0: lower effective resolution (down/up-sampling)
    "jpeg",  # > 0: better JPEG quality
    "misalign",  # detector box jitter
    "occlusion",
)
DIM = {name: i for i, name in enumerate(STYLE_DIMS)}
LATENT_LIMIT = 3.0

# Condition archetypes: centres of the labelled domains and of the single-camera mixture.
ARCHETYPES: dict[str, dict[str, float]] = {
    "mixed": {},
    "daylight": {
        "scene_val": 0.9,
        "scene_hue": 0.4,
        "exposure": 0.4,
        "contrast": 0.5,
        "temperature": 0.6,
        "blur": -0.6,
        "noise": -0.8,
        "gamma": -0.3,
    },
    "overcast": {
        "scene_sat": -1.2,
        "temperature": -0.9,
        "contrast": -0.7,
        "exposure": -0.2,
        "resolution": -0.6,
        "jpeg": 0.8,
        "scene_hue": -0.8,
    },
    "night": {
        "exposure": -0.9,
        "scene_val": -1.8,
        "noise": 1.9,
        "temperature": 1.6,
        "tint": -0.6,
        "contrast": -0.6,
        "gamma": 0.2,
        "blur": 0.8,
        "resolution": 0.9,
        "jpeg": -1.0,
    },
    "indoor": {
        "temperature": 1.0,
        "tint": 0.7,
        "scene_val": -0.3,
        "scene_sat": -0.5,
        "blur": 1.1,
        "resolution": 1.3,
        "noise": 0.5,
        "contrast": -0.3,
        "scene_hue": 1.3,
    },
    "dusk": {
        "exposure": -1.0,
        "temperature": -1.4,
        "tint": -0.8,
        "scene_val": -0.8,
        "noise": 0.9,
        "contrast": 0.4,
        "scene_hue": 2.0,
    },
    "cctv": {
        "resolution": 1.8,
        "jpeg": -1.8,
        "blur": 0.6,
        "scene_sat": -1.6,
        "contrast": 0.8,
        "misalign": 1.0,
        "occlusion": 1.0,
        "noise": 0.8,
    },
}


def archetype(name: str, offsets: Iterable[tuple[str, float]] = ()) -> np.ndarray:
    """Latent centre ``(K,)`` of a named archetype, shifted by ``(dim, delta)`` offsets."""
    if name not in ARCHETYPES:
        raise DynamixError(f"unknown style archetype {name!r}; known: {', '.join(ARCHETYPES)}")
    z = np.zeros(len(STYLE_DIMS), dtype=np.float64)
    for key, value in [*ARCHETYPES[name].items(), *offsets]:
        if key not in DIM:
            raise DynamixError(f"unknown style dimension {key!r}; known: {', '.join(DIM)}")
        z[DIM[key]] += value
    return z


def sample_around(rng: np.random.Generator, n: int, centre: np.ndarray, spread: float) -> np.ndarray:
    """Cameras of one domain: ``(n, K)`` latents drawn narrowly around its centre.

    The offsets are centred and scaled to exactly ``spread`` per axis, so a domain with
    few cameras is as varied as its preset says, not more or less by the luck of a draw
    (one outlier camera among four would change how hard the domain is).
    """
    offsets = rng.standard_normal((n, len(STYLE_DIMS)))
    if n >= 2:
        offsets -= offsets.mean(axis=0)
        offsets /= offsets.std(axis=0)
    return np.clip(centre[None, :] + spread * offsets, -LATENT_LIMIT, LATENT_LIMIT)


def sample_broad(
    rng: np.random.Generator,
    n: int,
    centres: np.ndarray,
    archetype_rate: float,
    archetype_spread: float,
    broad_sd: float,
) -> np.ndarray:
    """Street-video styles ``(n, K)``: a mixture that covers the whole style space.

    A share ``archetype_rate`` of videos sits (widely) around a random condition
    archetype, because real conditions are correlated (night = dark + noisy + cast);
    the rest is an independent wide Gaussian on every axis.
    """
    k = len(STYLE_DIMS)
    pick = rng.integers(len(centres), size=n)
    near = centres[pick] + archetype_spread * rng.standard_normal((n, k))
    wide = broad_sd * rng.standard_normal((n, k))
    use_archetype = rng.random(n) < archetype_rate
    z = np.where(use_archetype[:, None], near, wide)
    return np.clip(z, -LATENT_LIMIT, LATENT_LIMIT)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Vectorised HSV -> RGB for arrays of equal shape ``(...)`` -> ``(..., 3)``."""
    h = np.mod(h, 1.0) * 6.0
    i = np.floor(h).astype(np.int64) % 6
    f = h - np.floor(h)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    table = np.stack([v, q, p, p, t, v, t, v, v, q, p, p, p, p, t, v, v, q], axis=-1)
    table = table.reshape(*h.shape, 3, 6)  # channel-major: R, G, B rows over the 6 sectors
    return np.take_along_axis(table, i[..., None, None], axis=-1)[..., 0]


def style_params(latent: np.ndarray, image_height: int) -> dict[str, np.ndarray]:
    """Rendering parameters for ``(n, K)`` latents, each an ``(n,)`` or ``(n, 3)`` array."""
    z = {name: latent[:, i] for name, i in DIM.items()}
    scale = image_height / 128.0
    gain = np.stack(
        [
            np.exp(0.13 * z["temperature"] - 0.04 * z["tint"]),
            np.exp(0.09 * z["tint"]),
            np.exp(-0.13 * z["temperature"] - 0.04 * z["tint"]),
        ],
        axis=1,
    )
    scene_rgb = hsv_to_rgb(
        0.1 + 0.17 * z["scene_hue"],
        0.42 * _sigmoid(z["scene_sat"] - 0.4),
        0.1 + 0.6 * _sigmoid(0.9 * z["scene_val"]),
    )
    params = {
        "scene_rgb": scene_rgb,
        "scene_texture": 0.3 * _sigmoid(z["scene_texture"]),
        "gain": gain,
        "exposure": np.exp2(0.4 * z["exposure"]),
        "contrast": np.exp(0.22 * z["contrast"]),
        "gamma": np.exp(0.12 * z["gamma"]),
        "blur": 0.45 * np.exp(0.6 * z["blur"]) * scale,
        "noise": 0.012 * np.exp(0.6 * z["noise"]),
        "down": np.maximum(1.0, 1.0 + 0.55 * (z["resolution"] + 0.6)),
        "jpeg": np.clip(np.round(75 + 11 * z["jpeg"]), 15, 97),
        "shift_sd": 0.02 * np.exp(0.45 * z["misalign"]),
        "scale_sd": 0.035 * np.exp(0.45 * z["misalign"]),
        "occlusion": 0.3 * _sigmoid(1.6 * (z["occlusion"] - 1.2)),
    }
    return {k: np.round(v, 4).astype(np.float32) for k, v in params.items()}
