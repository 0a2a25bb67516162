"""The last passing data gate, so a rerun on unchanged data skips decoding every image.

The gate's answer depends only on the manifests, the image files, the validation settings
and the gate's own code. Its most costly part is opening every image (1.15 M files: minutes),
paid again by every pipeline run although most runs train on a data version that passed
before. So a pass is recorded with a fingerprint of all its inputs, as DVC does for a
stage: the manifests' bytes, every image's size and modification time, ``world.json``,
the ``validation`` and data-spec params, and the source of the gate's modules (named by
the caller, :data:`flows.validation.GATE_CODE`, so this module imports no gate code). A run
whose fingerprint matches reuses the recorded summary, as long as the reports it names (the
JSON results, the Data Docs) are still on disk; any change (one image rewritten, a rebuilt
manifest, a new expectation) validates from scratch. Failures are never recorded.

The record sits beside the reports folder (``<reports_dir>-gate.json``), outside the DVC
output ``reports_dir``, because modification times differ between machines.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dynamix.checks import file_stats
from dynamix.config import Params, to_dict
from dynamix.data.lmdb_store import SCHEME
from dynamix.data.manifest import manifest_path
from dynamix.io import write_json_atomic

DATA_KEYS = ("preset", "sources", "single_camera", "targets")


def record_path(params: Params) -> Path:
    reports = Path(params.validation.reports_dir)
    return reports.with_name(f"{reports.name}-gate.json")


def _file_stats(paths: pd.Series) -> np.ndarray:
    """(N, 2) int64 size and mtime_ns per path (-1 for a missing file), then the same of the
    ``data.mdb`` of every LMDB store the paths name (``lmdb://<store>#<key>``): an entry
    cannot be stat'ed, but any rewrite of the store changes its data file."""
    names = paths.astype(str)
    lmdb = names.str.startswith(SCHEME)
    stores = sorted({p[len(SCHEME) :].rpartition("#")[0] for p in names[lmdb]})
    files = file_stats(names[~lmdb].tolist())
    return np.concatenate([files, file_stats([os.path.join(s, "data.mdb") for s in stores])])


def fingerprint(params: Params, code: Iterable[str | os.PathLike[str]]) -> str:
    """SHA-256 over everything the gate reads and the ``code`` files that judge it."""
    raw = to_dict(params)
    settings = {"validation": raw["validation"], "data": {k: raw["data"][k] for k in DATA_KEYS}}
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for path in code:
        digest.update(Path(path).read_bytes())
    world = Path(params.data.raw_dir) / "world.json"
    digest.update(world.read_bytes() if world.is_file() else b"no world.json")
    specs = [*params.data.sources, *params.data.single_camera, *params.data.targets]
    for spec in specs:
        manifest = manifest_path(params, spec.name)
        digest.update(spec.name.encode())
        if not manifest.is_file():
            digest.update(b"missing")
            continue
        data = manifest.read_bytes()
        digest.update(data)
        paths = pd.read_parquet(io.BytesIO(data), columns=["path"])["path"]
        digest.update(_file_stats(paths).tobytes())
    return digest.hexdigest()


def recorded_pass(params: Params, key: str) -> dict[str, Any] | None:
    """The summary of the last pass when its fingerprint is ``key``, else None."""
    path = record_path(params)
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    summary = record.get("summary") or {}
    if record.get("fingerprint") != key or not summary.get("success"):
        return None
    if not all(Path(p).is_file() for p in _reports(summary)):  # deleted: validate again
        return None
    return {**summary, "reused_from": record.get("validated_at")}


def _reports(summary: dict[str, Any]) -> list[str]:
    """The files a summary points the user at, which a reused pass must still provide."""
    paths = [d["report"] for d in (summary.get("datasets") or {}).values() if d.get("report")]
    return [*paths, summary["data_docs"]] if summary.get("data_docs") else paths


def record_pass(params: Params, key: str, summary: dict[str, Any]) -> None:
    """Remember a passing summary under ``key`` (atomic write; failures are not kept)."""
    if summary.get("success"):
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        write_json_atomic(record_path(params), {"fingerprint": key, "validated_at": stamp, "summary": summary})
    else:
        record_path(params).unlink(missing_ok=True)
