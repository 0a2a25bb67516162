"""Shared test setup: offline, quiet tools and a CPU-only default; the tiny world."""

import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from dynamix.offline import apply_offline_env
from dynamix.synth import generate_world

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


def _digest(root: Path) -> dict[str, str]:
    """``{relative path: sha1}`` of every file under ``root`` (the tiny world: ~3 MB)."""
    return {
        str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory) -> Iterator[Path]:
    """The tiny synthetic world (preset ``tiny``, seed 0), generated once for the session.

    Read-only: every suite reads the same files (generation is byte-identical for any
    number of workers), so a test that corrupts, deletes or adds files takes
    ``tiny_world_copy``. Tests run as root here, so file modes cannot enforce that; the
    session instead ends with an error naming any file a test left changed.
    """
    root = tmp_path_factory.mktemp("tiny-world") / "raw"
    generate_world(root, preset="tiny", seed=0, workers=1)
    before = _digest(root)
    yield root
    after = _digest(root)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert not changed, f"tests changed the shared tiny_world (use tiny_world_copy): {changed}"


@pytest.fixture
def tiny_world_copy(tiny_world: Path, tmp_path: Path) -> Path:
    """A private copy of ``tiny_world`` at ``tmp_path / "raw"`` (same bytes, file times kept),
    for tests that corrupt or change data: copying is faster than generating anew."""
    return Path(shutil.copytree(tiny_world, tmp_path / "raw"))
