"""``.ci/run`` installs Debian's chromium for the browser tests where apt-get can, before the
test suite, and carries on without it when that fails (those tests then skip).

Runs the real ``.ci/run`` with ``scripts/run.sh``, ``apt-get`` and ``chromium`` stubbed and a
PATH holding only the stubs and the two programs the script needs, so nothing is installed.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
STUB = '#!/usr/bin/env bash\necho "$(basename "$0") $*" >> "$CALLS"\nexit "${{{rc}:-0}}"\n'
INSTALL = ["apt-get update -qq", "apt-get install -y -qq chromium"]
SUITE = ["run.sh test", "run.sh repro"]


@pytest.fixture
def ci(tmp_path: Path) -> Path:
    """A copy of ``.ci/run``, a stub ``scripts/run.sh`` and ``bin/`` with stub ``apt-get``."""
    (tmp_path / ".ci").mkdir()
    shutil.copy2(REPO / ".ci/run", tmp_path / ".ci/run")
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts/run.sh").write_text(STUB.format(rc="RUN_RC"))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "dirname", "basename"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    stub(tmp_path, "apt-get")
    return tmp_path


def stub(root: Path, name: str) -> None:
    path = root / "bin" / name
    path.write_text(STUB.format(rc=name.upper().replace("-", "_") + "_RC"))
    path.chmod(0o755)


def run_ci(root: Path, **env: str) -> tuple[int, list[str], str]:
    calls = root / "calls.log"
    done = subprocess.run(
        [shutil.which("bash"), str(root / ".ci/run")],
        env={"PATH": str(root / "bin"), "CALLS": str(calls), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = calls.read_text().splitlines() if calls.exists() else []
    return done.returncode, [line.strip() for line in lines], done.stdout + done.stderr


def test_chromium_is_installed_before_the_tests_when_missing(ci: Path):
    rc, calls, out = run_ci(ci)
    assert rc == 0, out
    assert calls == INSTALL + SUITE


def test_a_failed_install_still_runs_the_tests(ci: Path):
    rc, calls, out = run_ci(ci, APT_GET_RC="100")
    assert rc == 0, out
    assert calls == INSTALL[:1] + SUITE  # update failed: no install attempted
    assert "browser tests will be skipped" in out


def test_nothing_is_installed_when_chromium_is_present(ci: Path):
    stub(ci, "chromium")
    rc, calls, out = run_ci(ci)
    assert rc == 0, out
    assert calls == SUITE


def test_no_apt_get_or_opted_out_installs_nothing(ci: Path):
    rc, calls, out = run_ci(ci, DYNAMIX_CI_BROWSER="0")
    assert (rc, calls) == (0, SUITE), out
    (ci / "calls.log").unlink()
    (ci / "bin" / "apt-get").unlink()
    rc, calls, out = run_ci(ci)
    assert (rc, calls) == (0, SUITE), out
