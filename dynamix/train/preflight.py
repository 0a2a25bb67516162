"""What must hold before a training run starts, so that it never mixes with stale state.

- **The data** (``dynamix train``, unless ``--skip-validation``): the manifests are the
  ones ``dynamix prepare`` builds from today's params and roots
  (:func:`dynamix.prepare.require_current_manifests`), and the last data-gate result
  (``validation.summary_path``, written by ``dynamix validate``) passed on exactly these
  manifest bytes. DVC and the Prefect flow run the gate just before, so they pass; a hand
  run on data the gate rejected, or never saw, stops here with one line.
- **The output folder** (:func:`prepare_out_dir`, called by the trainer on every rank): a
  fresh run refuses a ``train.out_dir`` that holds a previous run's files unless told to
  replace them (``--overwrite``); a resume keeps them. Either way the temporary files of a
  killed write are removed first, and a resumed run drops ``metrics.json`` until it ends
  again: ``metrics.json`` exists only in a folder whose run finished, so nothing tracks a
  half-done or mixed folder as a result.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from dynamix.config import Params
from dynamix.errors import DynamixError
from dynamix.io import clean_temp_files

log = logging.getLogger(__name__)

#: Everything the trainer writes into ``train.out_dir``: what makes a folder "used", and
#: what ``--overwrite`` removes (other files there are left alone).
RUN_FILES = ("last.pt", "best.pt", "metrics.json", "log.jsonl", "params.json")
#: Written last, by a run that reached ``train.iters``: the mark of a finished run.
DONE_FILE = "metrics.json"


def run_files(out_dir: str | os.PathLike[str]) -> list[str]:
    """The :data:`RUN_FILES` present in ``out_dir``."""
    out = Path(out_dir)
    return [name for name in RUN_FILES if (out / name).exists()]


def check_out_dir(out_dir: str | os.PathLike[str], *, resume: bool, overwrite: bool) -> None:
    """Refuse a fresh run into a folder holding a previous run, unless ``overwrite``."""
    if resume and overwrite:
        raise DynamixError("--resume continues the run in train.out_dir, --overwrite replaces it: pass one")
    found = run_files(out_dir)
    if found and not resume and not overwrite:
        raise DynamixError(
            f"{out_dir}: holds a previous run ({', '.join(found)}); pass --resume to continue it, "
            "--overwrite to replace it, or set train.out_dir to a new folder"
        )


def prepare_out_dir(out_dir: str | os.PathLike[str], *, resume: bool, overwrite: bool, main: bool) -> None:
    """:func:`check_out_dir` (every rank: they all see the same folder, so all refuse
    together); then, on the main rank only, remove killed writes' temporary files and, with
    ``overwrite``, the previous run's files."""
    check_out_dir(out_dir, resume=resume, overwrite=overwrite)
    if not main:
        return
    clean_temp_files(out_dir)
    if overwrite:
        found = run_files(out_dir)
        for name in found:
            (Path(out_dir) / name).unlink()
        if found:
            log.info("--overwrite: removed the previous run's %s from %s", ", ".join(found), out_dir)


def mark_unfinished(out_dir: str | os.PathLike[str]) -> None:
    """Drop ``metrics.json`` of a run that goes on (a resume): until it ends again, the
    folder's checkpoints are newer than that summary."""
    (Path(out_dir) / DONE_FILE).unlink(missing_ok=True)


def check_gate(params: Params) -> None:
    """Raise unless the last data-gate result passed on the manifests there now."""
    from dynamix.data.manifest import manifest_digests

    path = Path(params.validation.summary_path)
    skip = "or pass --skip-validation"
    if not path.is_file():
        raise DynamixError(f"{path}: no data-gate result; run `dynamix validate` first, {skip}")
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DynamixError(f"{path}: unreadable data-gate result ({exc}); run `dynamix validate`, {skip}") from exc
    if not summary.get("success"):
        failed = summary.get("failures") or []
        first = failed[0] if failed else {}
        example = f", e.g. {first.get('dataset')}: {first.get('rule')}" if first else ""
        raise DynamixError(
            f"{path}: the data gate failed ({len(failed)} expectations{example}); fix the data and run "
            f"`dynamix validate`, {skip}"
        )
    judged = summary.get("manifests")
    if not isinstance(judged, dict):
        raise DynamixError(f"{path}: names no manifests (an older dynamix validate); run `dynamix validate`, {skip}")
    now = manifest_digests(params)
    changed = [name for name, digest in now.items() if digest is None or judged.get(name) != digest]
    if changed:
        raise DynamixError(
            f"{path}: the data gate passed on other manifests than those of {', '.join(changed)} now; "
            f"run `dynamix validate`, {skip}"
        )


def check_data(params: Params) -> None:
    """The data half of the module docstring: current manifests, passed by the gate."""
    from dynamix.prepare import require_current_manifests

    require_current_manifests(params)
    check_gate(params)
