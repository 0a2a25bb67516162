"""The trainer tests' params: the session's tiny world with its manifests prepared."""

from __future__ import annotations

from pathlib import Path

import pytest

from dynamix.config import load_params
from dynamix.prepare import prepare_manifests


@pytest.fixture(scope="session")
def params_file(world_params, tiny_world, tmp_path_factory) -> Path:
    """The repo's params.yaml pointed at the shared tiny world, with its manifests prepared."""
    path = world_params(tiny_world, tmp_path_factory.mktemp("train"))
    prepare_manifests(load_params(path))
    return path
