"""Shared test setup: offline, quiet tools and a CPU-only default."""

import os
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]

for key, value in {
    "DO_NOT_TRACK": "true",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DVC_NO_ANALYTICS": "1",
    "ITERATIVE_DO_NOT_TRACK": "1",
    "GX_ANALYTICS_ENABLED": "false",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
}.items():
    os.environ.setdefault(key, value)


@pytest.fixture(scope="session")
def world_params():
    """Write the repo's params.yaml pointed at a generated world; every output under ``out``.

    Returns ``make(world, out) -> Path``: dataset roots and raw_dir move into ``world``,
    manifests and validation reports into ``out``, so tests never write into the repo.
    """

    def make(world: Path, out: Path) -> Path:
        raw = yaml.safe_load((REPO / "params.yaml").read_text())
        raw["data"]["raw_dir"] = str(world)
        raw["data"]["manifests_dir"] = str(out / "manifests")
        for group in ("sources", "single_camera", "targets"):
            for spec in raw["data"][group]:
                spec["root"] = str(world / Path(spec["root"]).name)
        raw["validation"]["reports_dir"] = str(out / "validation")
        raw["validation"]["summary_path"] = str(out / "validation.json")
        path = out / "params.yaml"
        path.write_text(yaml.safe_dump(raw))
        return path

    return make
