"""The tiny synthetic world shared by the trainer tests (generated once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dynamix.config import load_params
from dynamix.prepare import prepare_manifests
from dynamix.synth import generate_world


@pytest.fixture(scope="session")
def params_file(world_params, tmp_path_factory) -> Path:
    """The repo's params.yaml pointed at a tiny world, with its manifests prepared."""
    base = tmp_path_factory.mktemp("train")
    world = base / "raw"
    generate_world(world, preset="tiny", seed=0, workers=2)
    path = world_params(world, base)
    prepare_manifests(load_params(path))
    return path
