"""The trainer tests' params: the session's tiny world with its manifests prepared and
passed by the data gate (``dynamix train`` refuses data the gate has not passed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dynamix.config import load_params
from dynamix.prepare import prepare_manifests


@pytest.fixture(scope="session")
def params_file(world_params, tiny_world, tmp_path_factory) -> Path:
    """The repo's params.yaml pointed at the shared tiny world, its manifests prepared and
    validated (the real gate, once per session)."""
    from flows.validation import format_summary, validate_data

    path = world_params(tiny_world, tmp_path_factory.mktemp("train"))
    params = load_params(path)
    prepare_manifests(params)
    summary = validate_data(params)
    assert summary["success"], format_summary(summary)
    return path
