"""The pipeline's resume check on a damaged ``last.pt``: a one-line user error naming the
file, so the ``train`` task fails once instead of retrying twice on the same bad file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from prefect.states import Failed

from dynamix.config import load_params, to_dict
from dynamix.errors import DynamixError
from dynamix.train.state import save_checkpoint
from flows import pipeline

REPO = Path(__file__).resolve().parents[2]
PARAMS = str(REPO / "params.yaml")


def damaged(out: Path, how: str) -> Path:
    """``out/last.pt``: empty, or a real checkpoint cut in half (a copy that stopped early)."""
    last = out / "last.pt"
    if how == "empty":
        last.write_bytes(b"")
    else:
        params = load_params(PARAMS, [f"train.out_dir={out}"])
        save_checkpoint({"step": 3, "w": torch.zeros(2048), "params": to_dict(params)}, last)
        last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    return last


@pytest.mark.parametrize("how", ["empty", "truncated"])
@pytest.mark.parametrize(("attempt", "resume"), [(2, False), (1, True)])
def test_resume_plan_names_an_unreadable_last_pt_and_keeps_it(tmp_path, how, attempt, resume):
    last = damaged(tmp_path, how)
    params = load_params(PARAMS, [f"train.out_dir={tmp_path}"])
    with pytest.raises(DynamixError) as err:
        pipeline.resume_plan(params, attempt=attempt, resume=resume)
    message = str(err.value)
    assert message.startswith(f"{last}: ") and "start without --resume" in message and "\n" not in message
    assert last.is_file()  # the user decides: delete it or put back a good copy
    # a first attempt without resume never reads it: it starts fresh and clears it
    assert pipeline.resume_plan(params, attempt=1, resume=False) == (False, "attempt 1: training from step 0")
    assert not last.exists()


def test_the_train_task_fails_on_it_without_a_retry(tmp_path):
    last = damaged(tmp_path, "empty")
    with pytest.raises(DynamixError, match=rf"^{re.escape(str(last))}: checkpoint is empty") as err:
        pipeline.train_task.fn(PARAMS, [f"train.out_dir={tmp_path}"], "no-mlflow-run", resume=True)
    task = pipeline.train_task
    assert task.retries == 2  # a crash is retried ...
    assert task.retry_condition_fn(task, None, Failed(data=RuntimeError("rank killed")))
    assert not task.retry_condition_fn(task, None, Failed(data=err.value))  # ... this is not


@pytest.mark.slow
def test_in_a_real_flow_run_the_task_runs_once_and_the_message_names_the_file(tmp_path):
    from prefect import flow, get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.testing.utilities import prefect_test_harness

    last = damaged(tmp_path, "truncated")

    @flow
    def resume_only() -> dict:
        return pipeline.train_task(PARAMS, [f"train.out_dir={tmp_path}"], "no-mlflow-run", True)

    with prefect_test_harness():
        state = resume_only(return_state=True)
        with get_client(sync_client=True) as client:
            flow_run = FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
            (run,) = client.read_task_runs(flow_run_filter=flow_run)
    assert state.is_failed() and f"{last}: cannot read checkpoint" in state.message
    assert run.run_count == 1 and run.state.is_failed()
