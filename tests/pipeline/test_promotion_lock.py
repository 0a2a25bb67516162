"""Serialised promotion: the file lock every promotion takes (CLI, DVC, flow) and the
Prefect global concurrency slot the flow's promote task holds, on a fresh test server."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from dynamix.config import Params, TrackingConfig
from dynamix.errors import DynamixError
from flows.promotion import lock_path, promotion_lock

HOLD = """
import fcntl, sys, time
with open(sys.argv[1], "a") as handle:
    fcntl.flock(handle, fcntl.LOCK_EX)
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def params_for(uri: str) -> Params:
    return Params(tracking=TrackingConfig(uri=uri))


def test_the_lock_lies_beside_the_store_or_per_server(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert lock_path(params_for(f"sqlite:///{tmp_path}/store/mlflow.db")) == tmp_path / "store/mlflow.db.promote.lock"
    assert lock_path(params_for(str(tmp_path / "mlruns"))) == tmp_path / "mlruns/.promote.lock"
    one, other = (lock_path(params_for(f"http://10.0.0.{n}:5000")) for n in (1, 2))
    assert one != other and one.name.startswith("dynamix-promote-")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/env.db")  # the store actually used
    assert lock_path(params_for("sqlite:///elsewhere.db")) == tmp_path / "env.db.promote.lock"


def test_a_promotion_waits_for_another_process_holding_the_lock(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    params = params_for(f"sqlite:///{tmp_path}/mlflow.db")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(lock_path(params)), "1.5"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(DynamixError) as info:  # a stuck holder: one line, not a hang
            with promotion_lock(params, timeout_s=0.2):
                pass
        assert "another promotion has held this lock for over 0.2 s" in str(info.value)
        assert "\n" not in str(info.value)
        started = time.monotonic()
        with promotion_lock(params):  # waits until the other process lets go
            waited = time.monotonic() - started
            # the holder lets go when its file closes, a moment before its process ends, so
            # poll() here raced (failed in a CI run): wait, bounded, for its clean end
            assert holder.wait(timeout=10) == 0
        assert waited > 0.5
    finally:
        holder.kill()
        holder.wait()
    # the holder died holding nothing: the lock is free again at once
    with promotion_lock(params, timeout_s=0.5):
        pass


def test_an_unwritable_lock_folder_is_one_line(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    params = params_for(str(blocker / "mlruns"))  # a file store under a file
    with pytest.raises(DynamixError, match=r"cannot open the promotion lock"):
        with promotion_lock(params):
            pass


@pytest.fixture(scope="module")
def harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness():
        yield


def read_limit(name: str):
    from prefect import get_client

    with get_client(sync_client=True) as client:
        return client.read_global_concurrency_limit_by_name(name)


def test_promote_slots_are_taken_one_at_a_time_on_a_fresh_server(harness):
    """No limit exists on a fresh server: the first promotion makes it (1 slot), and two
    promotions at once hold the slot one after the other."""
    from flows.pipeline import PROMOTE_LIMIT, promotion_slot

    spans: list[tuple[float, float]] = []

    def promote() -> None:
        with promotion_slot():
            entered = time.monotonic()
            time.sleep(0.4)
            spans.append((entered, time.monotonic()))

    threads = [threading.Thread(target=promote) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(spans) == 2
    first, second = sorted(spans)
    assert second[0] >= first[1]  # never both inside
    limit = read_limit(PROMOTE_LIMIT)
    assert limit.limit == 1 and limit.active and limit.active_slots == 0


def test_a_limit_widened_by_hand_is_set_back_to_one_slot(harness):
    from prefect import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate

    from flows.pipeline import promotion_slot

    with get_client(sync_client=True) as client:
        client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name="promote-wide", limit=3, active=False))
    with promotion_slot("promote-wide"):
        limit = read_limit("promote-wide")
        assert (limit.limit, limit.active, limit.active_slots) == (1, True, 1)
