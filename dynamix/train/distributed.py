"""Multi-process (DDP) plumbing for the trainer: torchrun's environment and a few collectives.

``torchrun --nproc_per_node=N`` sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``; with
``WORLD_SIZE`` > 1, :func:`init_from_env` starts the process group (``nccl`` on CUDA,
``gloo`` on the CPU) and binds each process to its GPU. Without torchrun nothing happens
and every helper below is a no-op, so single-process code paths stay exactly as they were.

Why so few collectives: the only state DynaMix keeps outside the model is the centroid
bank and the label array, and both must stay **identical** on every rank (the sampler's
matching, the centroid loss and the relabeling read them). The bank changes through
:meth:`~dynamix.centroids.CentroidBank.update` only after :func:`all_gather` gave every
rank the same global batch, and through init/relabel only on rank 0 followed by
:func:`broadcast_`; so the ranks agree bit for bit by construction, not by luck.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)

# Rank 0 alone evaluates, relabels and writes checkpoints while the others wait in a
# collective; NCCL's default 10 min watchdog would kill them during a long evaluation.
TIMEOUT = timedelta(hours=1)


def env_world_size() -> int:
    """``WORLD_SIZE`` set by torchrun (1 without it)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def is_main() -> bool:
    """Rank 0: the one process that writes files, evaluates and relabels."""
    return rank() == 0


def rank_seed(seed: int, rank_: int | None = None) -> int:
    """Per-rank seed (``seed + 1000·rank``): rank 0 keeps ``seed``, so N=1 is unchanged."""
    return seed + 1000 * (rank() if rank_ is None else rank_)


def init_from_env(device: torch.device) -> torch.device:
    """Start the process group if torchrun asked for several processes; returns the device.

    On CUDA each process takes ``cuda:LOCAL_RANK`` (an explicit ``cuda:N`` in the config
    would put every rank on one GPU). Idempotent: a group that is already up is reused.
    """
    if env_world_size() <= 1:
        return device
    if device.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if device.index is not None and device.index != local:
            log.warning("train.device=%s ignored under torchrun: rank uses cuda:%d", device, local)
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=TIMEOUT)
    log.info(
        "distributed: rank %d of %d, backend %s, device %s",
        dist.get_rank(),
        dist.get_world_size(),
        dist.get_backend(),
        device,
    )
    return device


def cleanup() -> None:
    """Tear the process group down (end of ``dynamix train``); no-op without one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if is_distributed():
        dist.barrier()


@torch.no_grad()
def all_gather(features: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``gather_fn`` for :meth:`CentroidBank.update`: every rank's batch, in rank order.

    ``features`` (B, D) and ``labels`` (B,) of this rank become (W·B, D) and (W·B,), the
    same tensors on every rank, so every rank applies the identical bank update. The
    sampler gives every rank batches of the same size, which ``dist.all_gather`` needs.
    """
    if not is_distributed():
        return features, labels
    features = features.contiguous()
    feats = [torch.empty_like(features) for _ in range(world_size())]
    labs = [torch.empty_like(labels) for _ in range(world_size())]
    dist.all_gather(feats, features)
    dist.all_gather(labs, labels.contiguous())
    return torch.cat(feats), torch.cat(labs)


def _bits(tensor: torch.Tensor) -> torch.Tensor:
    """A float tensor's bytes (a view): exact copies, and gloo has no bf16/int16 support."""
    return tensor.reshape(-1).view(torch.uint8) if tensor.is_floating_point() else tensor


@torch.no_grad()
def broadcast_(tensors: Iterable[torch.Tensor], src: int = 0) -> None:
    """Overwrite ``tensors`` in place with rank ``src``'s values, bit for bit."""
    if not is_distributed():
        return
    for t in tensors:
        if not t.is_contiguous():
            raise ValueError("broadcast_ needs contiguous tensors (they are updated in place)")
        dist.broadcast(_bits(t), src)


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s picklable ``obj`` on every rank (eval results, relabel stats)."""
    if not is_distributed():
        return obj
    box = [obj if rank() == src else None]
    dist.broadcast_object_list(box, src)
    return box[0]


def all_gather_object(obj: Any) -> list[Any]:
    """``[obj of rank 0, obj of rank 1, …]`` on every rank (per-rank checkpoint state)."""
    if not is_distributed():
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


@torch.no_grad()
def all_reduce_mean_(tensors: Iterable[torch.Tensor]) -> None:
    """Average ``tensors`` in place across ranks (gradients outside DDP, BN statistics)."""
    if not is_distributed():
        return
    n = world_size()
    for t in tensors:
        dist.all_reduce(t)
        t.div_(n)


@torch.no_grad()
def all_reduce_grads_(params: list[torch.nn.Parameter], device: torch.device) -> None:
    """Average the gradients of ``params`` (parameters outside DDP) across the ranks.

    A parameter without a gradient on some rank (not in that rank's graph) gets zeros
    there, unless no rank has one: then it stays ``None`` everywhere, as in one process
    (so AdamW skips it, as it would).
    """
    if not is_distributed() or not params:
        return
    has = torch.tensor([p.grad is not None for p in params], dtype=torch.float, device=device)
    all_reduce_mean_([has])  # (P,) > 0: some rank has a gradient
    grads = []
    for p, used in zip(params, has.tolist(), strict=True):
        if used > 0:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            grads.append(p.grad)
    all_reduce_mean_(grads)
