"""People: appearance attributes drawn from a domain's identity prior.

Attributes mix continuous draws (colours, proportions) with discrete choices (garment
type, pattern, bag) and a shared palette of common neutral colours, so near-duplicates
exist: many people wear a black top over dark trousers, exactly as in real footage, and a
colour histogram alone cannot separate them. Colours are stored as a per-person palette
indexed by body part, which the renderer gathers in one step.
"""

from __future__ import annotations

import numpy as np

from dynamix.synth.presets import IdentityPrior
from dynamix.synth.style import hsv_to_rgb

# Body-part codes: the renderer's label map indexes a person's palette with them.
BACKGROUND, SKIN, HAIR, HAT, UPPER, UPPER2, LOWER, SHOE, BAG = range(9)
NUM_PARTS = 9

PATTERNS = ("solid", "stripes", "checks", "logo")
LOWER_TYPES = ("trousers", "shorts", "skirt")
BAGS = ("none", "backpack", "handbag", "shoulder")

NEUTRALS = np.array(
    [
        [0.07, 0.07, 0.08],  # black
        [0.20, 0.20, 0.22],  # charcoal
        [0.48, 0.48, 0.50],  # grey
        [0.88, 0.88, 0.86],  # white
        [0.10, 0.13, 0.30],  # navy
        [0.24, 0.33, 0.52],  # denim
        [0.60, 0.55, 0.40],  # khaki
        [0.34, 0.24, 0.17],  # brown
        [0.32, 0.35, 0.20],  # olive
        [0.80, 0.72, 0.60],  # beige
    ]
)
NEUTRAL_WEIGHTS = np.array([0.22, 0.14, 0.1, 0.1, 0.1, 0.12, 0.06, 0.07, 0.04, 0.05])
SKIN_LIGHT = np.array([0.93, 0.78, 0.67])
SKIN_DARK = np.array([0.33, 0.21, 0.14])
HAIR_COLOURS = np.array([[0.05, 0.04, 0.04], [0.22, 0.14, 0.08], [0.75, 0.62, 0.35], [0.6, 0.6, 0.6], [0.55, 0.1, 0.1]])
HAIR_WEIGHTS = np.array([0.5, 0.3, 0.1, 0.05, 0.05])


def _neutral(rng: np.random.Generator, n: int) -> np.ndarray:
    pick = rng.choice(len(NEUTRALS), size=n, p=NEUTRAL_WEIGHTS)
    return NEUTRALS[pick] + 0.035 * rng.standard_normal((n, 3))


def _coloured(rng: np.random.Generator, n: int, prior: IdentityPrior) -> np.ndarray:
    if prior.hue is None:
        hue = rng.random(n)
    else:
        hue = prior.hue + prior.hue_spread * rng.standard_normal(n)
    sat = np.clip(prior.saturation + 0.2 * rng.standard_normal(n), 0.15, 1.0)
    val = np.clip(prior.value + 0.18 * rng.standard_normal(n), 0.2, 1.0)
    return hsv_to_rgb(hue, sat, val)


def _garment(rng: np.random.Generator, n: int, prior: IdentityPrior, neutral: float) -> np.ndarray:
    use_neutral = rng.random(n) < neutral
    return np.where(use_neutral[:, None], _neutral(rng, n), _coloured(rng, n, prior))


def _choice(rng: np.random.Generator, n: int, probs: list[float]) -> np.ndarray:
    return rng.choice(len(probs), size=n, p=np.asarray(probs) / sum(probs)).astype(np.int8)


def sample_identities(rng: np.random.Generator, n: int, prior: IdentityPrior) -> dict[str, np.ndarray]:
    """Attribute table of ``n`` people: ``palette`` ``(n, NUM_PARTS, 3)`` plus ``(n,)`` columns."""
    palette = np.zeros((n, NUM_PARTS, 3))
    skin_t = np.clip(prior.skin_dark + 0.25 * rng.standard_normal(n), 0.0, 1.0)[:, None]
    palette[:, SKIN] = (1 - skin_t) * SKIN_LIGHT + skin_t * SKIN_DARK
    hair = HAIR_COLOURS[rng.choice(len(HAIR_COLOURS), size=n, p=HAIR_WEIGHTS)]
    palette[:, HAIR] = hair + 0.03 * rng.standard_normal((n, 3))
    palette[:, HAT] = _garment(rng, n, prior, 0.5)
    palette[:, UPPER] = _garment(rng, n, prior, prior.neutral_rate)
    palette[:, UPPER2] = _garment(rng, n, prior, 0.5)
    palette[:, LOWER] = _garment(rng, n, prior, max(prior.neutral_rate, 0.7))
    palette[:, SHOE] = _garment(rng, n, prior, 0.85)
    palette[:, BAG] = _garment(rng, n, prior, 0.6)

    summer = rng.random(n) < prior.summer_rate
    lower_summer = _choice(rng, n, [0.2, 0.5, 0.3])
    lower_other = _choice(rng, n, [0.85, 0.0, 0.15])
    has_pattern = rng.random(n) < prior.pattern_rate
    rest = (1 - prior.long_hair_rate) / 2
    table = {
        "palette": np.clip(palette, 0.0, 1.0),
        "pattern": np.where(has_pattern, rng.integers(1, len(PATTERNS), size=n), 0).astype(np.int8),
        "period": rng.uniform(0.03, 0.07, size=n),
        "long_sleeve": ~summer,
        "lower_type": np.where(summer, lower_summer, lower_other).astype(np.int8),
        "hair_len": _choice(rng, n, [rest, rest, prior.long_hair_rate]),
        "hat": rng.random(n) < prior.hat_rate,
        "bag": np.where(rng.random(n) < prior.bag_rate, rng.integers(1, len(BAGS), size=n), 0).astype(np.int8),
        "bag_side": np.where(rng.random(n) < 0.5, -1, 1).astype(np.int8),
        "girth": rng.uniform(0.82, 1.2, size=n),
        "waist": rng.uniform(0.49, 0.55, size=n),
        "head": rng.uniform(0.9, 1.1, size=n),
    }
    return {k: np.round(v, 4).astype(np.float32) if v.dtype.kind == "f" else v for k, v in table.items()}
