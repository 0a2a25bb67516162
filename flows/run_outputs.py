"""A finished training run directory, read for tracking: events, the model and its pictures.

No MLflow here: :mod:`flows.tracking` logs what these functions return. The model that is
logged and registered is the encoder the trainer evaluated (``train.eval_model``, the
momentum encoder by default) at its best checkpoint, so its weights and its metrics
(``best.pt``'s last evaluation) always belong together.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dynamix.config import Params
from dynamix.errors import DynamixError
from dynamix.io import file_sha256

log = logging.getLogger(__name__)

CHECKPOINTS = ("best.pt", "last.pt")  # the model comes from the first that exists


def read_events(run_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The records of ``<run_dir>/log.jsonl`` in order (empty when there is no log)."""
    path = Path(run_dir) / "log.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def read_summary(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """``<run_dir>/metrics.json``, the trainer's final summary."""
    path = Path(run_dir) / "metrics.json"
    if not path.is_file():
        raise DynamixError(f"{path}: not found; run `dynamix train` first or pass --run-dir")
    return json.loads(path.read_text())


def read_run_params(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """``<run_dir>/params.json``: the params the trainer actually ran with (the lineage that
    gets logged), not the ones on the tracking command line."""
    path = Path(run_dir) / "params.json"
    if not path.is_file():
        raise DynamixError(f"{path}: not found; only a `dynamix train` output directory can be tracked")
    try:
        raw = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DynamixError(f"{path}: not valid JSON ({exc}); train the run again") from exc
    if not isinstance(raw, dict):
        raise DynamixError(f"{path}: not a params mapping; train the run again")
    return raw


def checkpoint_path(run_dir: str | os.PathLike[str]) -> Path:
    """The checkpoint whose encoder is logged: ``best.pt``, else ``last.pt``."""
    for name in CHECKPOINTS:
        if (Path(run_dir) / name).is_file():
            return Path(run_dir) / name
    raise DynamixError(f"{run_dir}: no best.pt or last.pt; run `dynamix train` first")


def run_fingerprint(run_dir: str | os.PathLike[str]) -> str:
    """What identifies a training run directory across ``track`` calls: sha256 over the
    logged checkpoint's name and bytes and the bytes of ``params.json``.

    The same directory tracked again (or first logged live by the Prefect flow) gives the
    same fingerprint, so it finds its MLflow run instead of making a twin; a retrained
    directory (new weights or params) gives a new one.
    """
    checkpoint = checkpoint_path(run_dir)
    params = Path(run_dir) / "params.json"
    parts = [checkpoint.name, file_sha256(checkpoint), file_sha256(params) if params.is_file() else "-"]
    return hashlib.sha256(" ".join(parts).encode()).hexdigest()


@dataclass
class TrainedModel:
    """The evaluated encoder of a checkpoint and the metrics it scored at that step."""

    model: torch.nn.Module  # ReIDModel in eval mode: (B, 3, H, W) in [0, 1] -> (B, D) unit norm
    checkpoint: Path
    step: int
    encoder: str  # momentum | online
    img_size: tuple[int, int]
    metrics: dict[str, dict[str, float]]  # {target: {rank1, rank5, rank10, mAP, mINP, ...}}
    last_eval: dict[str, Any]  # the checkpoint's evaluation record (dynamix.train.eval_record)


def load_trained_model(run_dir: str | os.PathLike[str]) -> TrainedModel:
    """Rebuild the evaluated encoder from ``best.pt`` (else ``last.pt``) of ``run_dir``.

    The architecture comes from the params saved in the checkpoint, not the current
    params.yaml, so a later edit of ``model.*`` cannot mislabel an old run.
    """
    from dynamix.infer.checkpoint import build_encoder, read_checkpoint

    found = checkpoint_path(run_dir)
    state = read_checkpoint(found)
    encoder = state["params"].get("train", {}).get("eval_model", "momentum")
    model, info = build_encoder(state, found, encoder)
    last_eval = state.get("last_eval") or {}
    targets = last_eval.get("targets") or {}
    metrics = {t: {k: float(v) for k, v in m.items()} for t, m in targets.items()}
    return TrainedModel(model, found, info.step, encoder, info.img_size, metrics, last_eval)


def input_example(params: Params, img_size: tuple[int, int], n: int = 2) -> np.ndarray:
    """(n, 3, H, W) float32 in [0, 1]: the first query images of the first target.

    Real images make the logged example meaningful; without manifests (a bare run
    directory) it falls back to a fixed-seed random batch. n >= 2 keeps the exported
    batch dimension dynamic (torch.export fixes a size-1 dimension).
    """
    from dynamix.data.images import ManifestImageDataset, build_transforms
    from dynamix.evaluation.targets import target_splits

    try:
        query, _ = next(iter(target_splits(params).values()))
        paths = query["path"].astype(str).tolist()[:n]
        dataset = ManifestImageDataset(paths, transform=build_transforms(img_size, train=False))
        batch = torch.stack([dataset[i][0] for i in range(len(paths))])
        if len(paths) == n:
            return batch.numpy().astype(np.float32)
    except (DynamixError, StopIteration, OSError) as exc:
        log.warning("input example: no target images (%s); using a random batch", exc)
    return np.random.default_rng(0).random((n, 3, *img_size), dtype=np.float32)


def write_ranked_lists(
    trained: TrainedModel, params: Params, out_dir: str | os.PathLike[str], num_queries: int
) -> list[Path]:
    """One ranked-list PNG per target (``ranked_<target>.png``), queries spread evenly.

    Drawn from the top matches the trainer recorded when it evaluated the checkpoint
    (:mod:`dynamix.train.eval_record`) while they still fit these targets and
    ``num_queries``; otherwise one feature pass over the target's queries and gallery.
    Skipped (with a warning) when the manifests are not there.
    """
    from dynamix.evaluation.targets import plot_ranked, rank_queries, ranked_rows, target_splits
    from dynamix.train.eval_record import reusable_targets
    from dynamix.train.features import extract_features

    if num_queries <= 0:
        return []
    try:
        splits = target_splits(params)
    except DynamixError as exc:
        log.warning("ranked lists skipped: %s", exc)
        return []
    recorded = trained.last_eval.get("ranked") or {}
    usable = set(reusable_targets(trained.last_eval, params, splits, trained.encoder))
    out = []
    for name, (query, gallery) in splits.items():
        rows = ranked_rows(len(query), num_queries)
        q = query.iloc[rows].reset_index(drop=True)
        top = recorded.get(name) if name in usable else None
        if top is None or top["rows"] != rows:  # not recorded: one feature pass
            kw = {"img_size": trained.img_size, "batch_size": params.train.eval_batch_size}
            qf = extract_features(trained.model, q["path"].astype(str).tolist(), **kw)
            gf = extract_features(trained.model, gallery["path"].astype(str).tolist(), **kw)
            top = rank_queries(qf, gf, q, gallery, list(range(len(q))), params.evaluation.metric)
            top = {**top, "rows": rows}
        out.append(plot_ranked(query, gallery, top, Path(out_dir) / f"ranked_{name}.png"))
    return out
