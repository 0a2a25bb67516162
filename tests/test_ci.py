"""``.ci/run`` with the real ``scripts/run.sh``, the tools stubbed: the reproducibility job
runs after a passing test suite, and its failure, a failing suite or pytest's "no tests"
(exit 5) each fail CI."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
STUB = """#!/usr/bin/env bash
echo "$(basename "$0") $*" >> "$CALLS"
exit "${{{rc}:-0}}"
"""


@pytest.fixture
def ci(tmp_path) -> Path:
    """A copy of .ci/run, scripts/run.sh and scripts/env.sh with a stub venv whose install
    stamp matches (so nothing is installed): ruff, pytest and python only record their
    arguments and exit with $RUFF_RC, $PYTEST_RC, $PYTHON_RC."""
    for rel in (".ci/run", "scripts/run.sh", "scripts/env.sh", "pyproject.toml"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, tmp_path / rel)
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    for tool in ("ruff", "pytest", "python"):
        (bin_dir / tool).write_text(STUB.format(rc=f"{tool.upper()}_RC"))
        (bin_dir / tool).chmod(0o755)
    digest = hashlib.sha256((REPO / "pyproject.toml").read_bytes()).hexdigest()[:16]
    (tmp_path / ".venv" / ".dynamix-install").write_text(f"{digest} [cpu,dev]\n")
    return tmp_path


def run_ci(root: Path, **rcs: int) -> tuple[int, list[str], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DYNAMIX_")}
    env.update({k: str(v) for k, v in rcs.items()}, CALLS=str(root / "calls.log"))
    env["DYNAMIX_CI_BROWSER"] = "0"  # never apt-get from a test (tests/test_ci_browser.py)
    done = subprocess.run(["bash", str(root / ".ci/run")], env=env, capture_output=True, text=True, timeout=60)
    calls = (root / "calls.log").read_text().splitlines() if (root / "calls.log").exists() else []
    return done.returncode, calls, done.stdout + done.stderr


def test_the_reproducibility_job_runs_after_the_tests(ci):
    rc, calls, out = run_ci(ci)
    assert rc == 0, out
    assert calls == ["ruff check .", "ruff format --check .", "pytest ", "python scripts/repro_check.py"]


def test_a_failing_reproducibility_job_fails_ci(ci):
    rc, calls, out = run_ci(ci, PYTHON_RC=1)
    assert rc == 1, out
    assert calls[-1] == "python scripts/repro_check.py"


@pytest.mark.parametrize(("pytest_rc", "ci_rc"), [(1, 1), (2, 2), (5, 1)])
def test_failing_tests_fail_ci_before_the_job(ci, pytest_rc, ci_rc):
    rc, calls, out = run_ci(ci, PYTEST_RC=pytest_rc)
    assert rc == ci_rc, out
    assert calls[-1] == "pytest " and not any("repro_check" in c for c in calls)
    if pytest_rc == 5:
        assert "collected no tests" in out


def test_a_lint_failure_fails_ci_before_pytest(ci):
    rc, calls, _ = run_ci(ci, RUFF_RC=1)
    assert rc == 1 and calls == ["ruff check ."]
