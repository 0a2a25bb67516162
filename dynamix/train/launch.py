"""Start a multi-process training under ``torchrun`` from inside one process.

``train.nproc_per_node`` > 1 asks for one training process per GPU on this node (gloo
CPU processes without CUDA). The training code itself only knows torchrun's environment
(:mod:`dynamix.train.distributed`); whoever starts a run — ``dynamix train`` run by hand
or by DVC, the Prefect ``train`` task — launches ``python -m torch.distributed.run``
(torchrun, from the same interpreter, so the same venv) with the module to run on every
rank, and waits for it. The output of all ranks is passed on line by line, so a Prefect
task can forward it to its run logger.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence

from dynamix.errors import DynamixError


def under_torchrun() -> bool:
    """True inside a process torchrun started (it sets ``TORCHELASTIC_RUN_ID``)."""
    return "TORCHELASTIC_RUN_ID" in os.environ


def wants_launch(nproc_per_node: int) -> bool:
    """Whether this process must start torchrun itself: more than one rank asked for and
    not already one of torchrun's ranks (a run under a user's own torchrun is left alone).
    """
    if not isinstance(nproc_per_node, int) or nproc_per_node < 1:
        raise DynamixError(
            f"train.nproc_per_node={nproc_per_node!r} must be an integer >= 1 "
            "(1 = this process; N = torchrun with N processes on this node)"
        )
    return nproc_per_node > 1 and not under_torchrun()


def torchrun_command(nproc_per_node: int, module: str, args: Sequence[str]) -> list[str]:
    """``python -m torch.distributed.run --standalone --nproc_per_node=N -m module args``.

    ``--standalone``: a single-node rendezvous on a free local port, so two runs on one
    machine never collide.
    """
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={int(nproc_per_node)}",
        "-m",
        module,
        *args,
    ]


def run_torchrun(command: Sequence[str], *, on_line: Callable[[str], None] | None = None) -> tuple[int, list[str]]:
    """Run ``command`` to its end; return (exit code, the last 50 output lines).

    With ``on_line`` stdout and stderr of every rank come back merged, one call per line;
    without it they go straight to this process's terminal (progress bars stay live).
    """
    if on_line is None:
        return subprocess.run(list(command), check=False).returncode, []
    tail: list[str] = []
    with subprocess.Popen(
        list(command), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    ) as proc:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.rstrip("\n")
            on_line(line)
            tail = [*tail[-49:], line]
    return proc.returncode, tail
