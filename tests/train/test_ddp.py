"""DDP on the CPU: 2 gloo processes keep the centroid bank and labels identical.

The collectives of :mod:`dynamix.train.distributed` are checked in a 2-process group
(``torch.multiprocessing.spawn``); the trainer end to end under a real ``torchrun``
(``python -m torch.distributed.run``) of ``dynamix train`` on the tiny world, each rank
dumping its final state (``ddp_worker.py``).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from state_compare import assert_same
from tiny_pipeline import TINY

from dynamix.centroids import CentroidBank
from dynamix.train import distributed
from dynamix.train.state import load_checkpoint

REPO = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("ddp_worker.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_env() -> dict[str, str]:
    """This checkout first on the path, one thread per process (2 processes, 2 cores)."""
    path = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


# ---- the collectives, in a 2-process gloo group -------------------------------------------
def _collectives(rank: int, world: int, init_file: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        feats = torch.arange(12, dtype=torch.float32).view(3, 4) + 100 * rank  # (3, 4)
        labels = torch.tensor([0, 1, 2]) + 3 * rank  # (3,)
        gathered = distributed.all_gather(feats, labels)
        bank = CentroidBank(6, 4, "fp16")
        bank.update(feats, labels % 4, 0.5, gather_fn=distributed.all_gather)
        halves = torch.full((5,), float(rank + 1), dtype=torch.bfloat16)
        distributed.broadcast_([halves])
        mean = torch.tensor([float(rank)])
        distributed.all_reduce_mean_([mean])
        # parameters outside DDP (e.g. a classifier): a grad on both ranks, on rank 1 only, none
        extra = [torch.nn.Parameter(torch.zeros(2)) for _ in range(3)]
        extra[0].grad = torch.full((2,), rank + 1.0)
        if rank == 1:
            extra[1].grad = torch.full((2,), 2.0)
        distributed.all_reduce_grads_(extra, torch.device("cpu"))
        result = {
            "gathered": gathered,
            "bank": bank.state_dict(),
            "halves": halves,
            "mean": mean,
            "object": distributed.broadcast_object({"rank": rank}),
            "objects": distributed.all_gather_object(rank),
            "main": distributed.is_main(),
            "extra_grads": [None if p.grad is None else p.grad.tolist() for p in extra],
        }
        torch.save(result, Path(out) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_collectives_give_every_rank_the_same_rank_ordered_result(tmp_path):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    mp.spawn(_collectives, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1))
    feats = torch.cat([torch.arange(12.0).view(3, 4), torch.arange(12.0).view(3, 4) + 100])
    for r in (r0, r1):
        assert torch.equal(r["gathered"][0], feats)  # (6, 4), rank 0's rows first
        assert r["gathered"][1].tolist() == [0, 1, 2, 3, 4, 5]
        assert r["halves"].tolist() == [1.0] * 5 and r["mean"].item() == 0.5
        assert r["object"] == {"rank": 0} and r["objects"] == [0, 1]
        assert r["extra_grads"] == [[1.5, 1.5], [1.0, 1.0], None]  # zeros stand in on rank 0
    assert r0["main"] and not r1["main"]
    single = CentroidBank(6, 4, "fp16")  # one process, the whole global batch
    single.update(feats, torch.tensor([0, 1, 2, 3, 0, 1]), 0.5)
    for key in ("centroids", "counts"):
        assert torch.equal(r0["bank"][key], r1["bank"][key])
        assert torch.equal(r0["bank"][key], single.state_dict()[key])


def test_helpers_are_no_ops_in_one_process():
    feats, labels = torch.randn(4, 3), torch.arange(4)
    assert distributed.all_gather(feats, labels) == (feats, labels)
    assert distributed.world_size() == 1 and distributed.rank() == 0 and distributed.is_main()
    assert distributed.rank_seed(7) == 7 and distributed.rank_seed(7, 2) == 2007
    assert distributed.init_from_env(torch.device("cpu")) == torch.device("cpu")


# ---- the trainer under torchrun -------------------------------------------------------------
def torchrun(params_file: Path, out: Path, dump: Path, *extra: str, kill_at: int = 0):
    sets = [a for s in [*TINY, f"train.out_dir={out}"] for a in ("--set", s)]
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_addr=127.0.0.1",
        f"--master_port={free_port()}",
        str(WORKER),
        str(dump),
        "train",
        "--params",
        str(params_file),
        "--no-progress",
        *sets,
        *extra,
    ]
    env = {**child_env(), "DDP_WORKER_KILL_AT": str(kill_at)}
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def dumps(dump: Path) -> tuple[dict, dict]:
    return tuple(torch.load(dump / f"rank{r}.pt", weights_only=False) for r in (0, 1))


@pytest.fixture(scope="module")
def ddp_run(params_file, tmp_path_factory) -> Path:
    """One 2-process gloo run of ``dynamix train`` (6 steps, 2 relabel rounds)."""
    base = tmp_path_factory.mktemp("ddp")
    done = torchrun(params_file, base / "run", base / "dump")
    assert done.returncode == 0, done.stderr[-4000:]
    assert "world size 2, backend gloo" in done.stderr
    # a hand-started torchrun wins over params.yaml, and says so
    assert "started by torchrun with 2 processes while train.nproc_per_node is 1" in done.stderr
    return base


def test_ddp_run_keeps_centroid_banks_identical_across_ranks(ddp_run):
    r0, r1 = dumps(ddp_run / "dump")
    assert r0["world_size"] == r1["world_size"] == 2
    assert r0["relabel_rounds"] == r1["relabel_rounds"] == 3  # two windows and the closing one
    assert torch.equal(r0["bank"]["centroids"], r1["bank"]["centroids"])  # bit-identical
    assert torch.equal(r0["bank"]["counts"], r1["bank"]["counts"])
    assert torch.equal(r0["labels"], r1["labels"])
    for key in ("model", "momentum"):  # DDP: same weights (and BN statistics) everywhere
        assert all(torch.equal(v, r1[key][k]) for k, v in r0[key].items()), key
    assert r0["summary"] == r1["summary"]
    # each rank trained on its own batches: (6, 16) image indices, different per step
    assert r0["seen"].shape == r1["seen"].shape == (6, 16)
    assert all(not torch.equal(a, b) for a, b in zip(r0["seen"], r1["seen"], strict=True))


def test_ddp_run_writes_each_output_once_from_rank_0(ddp_run):
    out = ddp_run / "run"
    assert {p.name for p in out.iterdir()} == {
        "last.pt",
        "best.pt",
        "metrics.json",
        "log.jsonl",
        "params.json",
    }
    lines = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    steps = [r for r in lines if r["event"] == "step"]
    assert [r["step"] for r in steps] == [1, 2, 3, 4, 5, 6]  # one writer, no duplicates
    assert all(r["batch"] == 32 and r["single_images"] == 16 for r in steps)  # global batch
    assert [r["step"] for r in lines if r["event"] == "relabel"] == [2, 4, 6]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["step"] == 6 and metrics["relabel_rounds"] == 3
    state = load_checkpoint(out / "last.pt")
    assert state["step"] == 6 and len(state["ranks"]) == 2
    r0, _ = dumps(ddp_run / "dump")
    assert torch.equal(state["bank"]["centroids"], r0["bank"]["centroids"])


@pytest.mark.slow
def test_ddp_run_killed_and_resumed_ends_identical(ddp_run, params_file, tmp_path):
    out, dump = tmp_path / "run", tmp_path / "dump"
    killed = torchrun(params_file, out, dump, kill_at=5)  # after last.pt at step 3
    assert killed.returncode != 0 and load_checkpoint(out / "last.pt")["step"] == 3
    resumed = torchrun(params_file, out, dump, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    a, b = load_checkpoint(ddp_run / "run" / "last.pt"), load_checkpoint(out / "last.pt")
    a.pop("params"), b.pop("params")  # out_dir differs
    for key in ("model", "momentum", "bank", "ranks", "step"):
        assert_same(a[key], b[key], key)
    assert torch.equal(a["labels"], b["labels"])


# ---- train.nproc_per_node: the command starts torchrun itself -----------------------------
def test_relaunch_args_parse_back_to_the_same_command():
    from dynamix.cli import build_parser
    from dynamix.train.cli import relaunch_args

    parser = build_parser()
    argv = [
        "--log-level",
        "WARNING",
        "train",
        "--params",
        "p.yaml",
        "--set",
        "a.b=1",
        "--set",
        "c=2",
        "--resume",
        "--metrics-out",
        "m.json",
        "--no-progress",
    ]
    args = parser.parse_args(argv)
    again = parser.parse_args(relaunch_args(args))
    assert vars(again) == vars(args)


def test_nproc_per_node_must_be_a_positive_integer(monkeypatch):
    from dynamix.errors import DynamixError
    from dynamix.train.launch import wants_launch

    monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
    assert not wants_launch(1) and wants_launch(2)
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "x")  # already a torchrun rank: no second launch
    assert not wants_launch(2)
    with pytest.raises(DynamixError, match="nproc_per_node=0 must be an integer >= 1"):
        wants_launch(0)


def test_train_command_with_nproc_per_node_starts_torchrun(params_file, tmp_path):
    """``dynamix train --set train.nproc_per_node=2`` from one plain process: 2 gloo ranks."""
    out = tmp_path / "run"
    sets = [*TINY, "train.iters=2", "train.eval_every=2", f"train.out_dir={out}", "train.nproc_per_node=2"]
    cmd = [
        sys.executable,
        "-m",
        "dynamix.cli",
        "train",
        "--params",
        str(params_file),
        "--no-progress",
        "--metrics-out",
        str(tmp_path / "m.json"),
        *[a for s in sets for a in ("--set", s)],
    ]
    env = {k: v for k, v in child_env().items() if k != "TORCHELASTIC_RUN_ID"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "starting torchrun with 2 processes" in done.stderr
    assert "[rank 1]" in done.stderr and "world size 2, backend gloo" in done.stderr
    assert json.loads((tmp_path / "m.json").read_text())["step"] == 2  # rank 0's metrics
    assert len(load_checkpoint(out / "last.pt")["ranks"]) == 2
