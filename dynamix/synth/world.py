"""The world: every domain of a preset planned from one seed, in a fixed order.

The domain's position in the world is part of all of its random streams, so domains are
independent of each other (their people are never shared) and each can be re-planned alone.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from dynamix.synth.catalog import get_preset
from dynamix.synth.labelled import plan_labelled
from dynamix.synth.plan import DomainPlan
from dynamix.synth.presets import Preset
from dynamix.synth.single_camera import plan_single_camera

log = logging.getLogger(__name__)


@dataclass
class World:
    preset: Preset
    seed: int
    domains: list[DomainPlan]

    @property
    def image_size(self) -> tuple[int, int]:
        return self.preset.image_size

    @property
    def num_images(self) -> int:
        return sum(len(d.images) for d in self.domains)


def plan_world(preset: str | Preset, seed: int = 0, image_size: tuple[int, int] | None = None) -> World:
    """Plan every domain of ``preset`` (no pixels yet)."""
    preset = get_preset(preset).with_image_size(image_size)
    start = time.perf_counter()
    domains = [plan_labelled(spec, i, seed, preset.image_size) for i, spec in enumerate(preset.labelled)]
    domains.append(plan_single_camera(preset.single_camera, len(domains), seed, preset.image_size))
    world = World(preset, seed, domains)
    log.info(
        "planned preset %s (seed %d): %d images in %d domains in %.1fs",
        preset.name,
        seed,
        world.num_images,
        len(domains),
        time.perf_counter() - start,
    )
    return world
