"""Shared test setup: offline, quiet tools and a CPU-only default."""

from pathlib import Path

import pytest
import yaml

from dynamix.offline import apply_offline_env

REPO = Path(__file__).resolve().parents[1]

apply_offline_env()


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
