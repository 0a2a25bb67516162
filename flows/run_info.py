"""What a tracked run records about its code and data: git state, DVC hash, preset, protocol.

Plain functions (no MLflow): :mod:`flows.tracking` turns them into run tags.
"""

from __future__ import annotations

import json
import os
import subprocess
from importlib import metadata
from pathlib import Path

import yaml

from dynamix.config import Params


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def data_md5(params: Params, dvc_file: str | os.PathLike[str] = "data.dvc") -> str:
    """md5 of ``data.raw_dir`` as recorded in ``data.dvc``; ``untracked`` if it is not there."""
    path = Path(dvc_file)
    if not path.is_file():
        return "untracked"
    for out in (yaml.safe_load(path.read_text()) or {}).get("outs", []):
        if (path.parent / out["path"]).resolve() == Path(params.data.raw_dir).resolve():
            return str(out.get("md5", "unknown"))
    return "untracked"


def preset(params: Params) -> str:
    """The synthetic preset recorded in ``<raw_dir>/world.json``, else ``data.preset``."""
    world = Path(params.data.raw_dir) / "world.json"
    if world.is_file():
        return str(json.loads(world.read_text()).get("preset", params.data.preset))
    return params.data.preset


def run_tags(params: Params) -> dict[str, str]:
    """Tags that make runs comparable: code, data, preset, datasets, protocol."""
    commit = _git("rev-parse", "HEAD") or "unknown"
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    d = params.data
    targets = ",".join(s.name for s in d.targets)
    try:
        version = metadata.version("dynamix")
    except metadata.PackageNotFoundError:
        version = "unknown"
    return {
        "mlflow.source.git.commit": commit,
        "git.commit": commit,
        "git.dirty": "unknown" if dirty is None else str(bool(dirty)).lower(),
        "dvc.data_md5": data_md5(params),
        "dynamix.preset": preset(params),
        "dynamix.sources": ",".join(s.name for s in d.sources),
        "dynamix.single_camera": ",".join(s.name for s in d.single_camera)
        if params.train.sampler.single_camera
        else "none",
        "dynamix.targets": targets,
        "dynamix.protocol": "+".join(s.name[0].upper() for s in d.sources) + f"->{targets}",
        "dynamix.version": version,
    }
