"""The embedded synthetic re-ID world (``dynamix synth``).

A faithful miniature of the DynaMix setting: labelled multi-camera source domains with
few, similar cameras; a large pseudo-labelled single-camera domain (street videos ->
tracklets -> pseudo pids) with controlled label noise and ground truth kept aside; and
unseen target domains. Everything is drawn procedurally from one seed.

The generator and planner are imported on first use, so that importing the CLI module
(``dynamix --help``) does not pay for numpy, pandas and Pillow.
"""

from typing import Any

from dynamix.synth.catalog import PRESETS, get_preset
from dynamix.synth.presets import IdentityPrior, LabelledDomainSpec, Preset, SingleCameraSpec

_LAZY = {
    "GENERATOR_VERSION": "dynamix.synth.generate",
    "generate_world": "dynamix.synth.generate",
    "World": "dynamix.synth.world",
    "plan_world": "dynamix.synth.world",
}

__all__ = [
    "GENERATOR_VERSION",
    "PRESETS",
    "IdentityPrior",
    "LabelledDomainSpec",
    "Preset",
    "SingleCameraSpec",
    "World",
    "generate_world",
    "get_preset",
    "plan_world",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'dynamix.synth' has no attribute {name!r}")
