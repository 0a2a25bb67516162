"""Data resolution for the pipeline: make ``data.raw_dir`` match its DVC-tracked version.

The same three steps as ``ensure_data`` in ``scripts/run.sh``, through DVC's Python API
(``dvc.repo.Repo``, the library behind the ``dvc`` CLI):

1. ``dvc status`` of the ``.dvc`` file that tracks ``raw_dir``: nothing to do when clean;
2. ``dvc checkout`` from the local cache (a fresh clone after ``dvc pull``, or files
   deleted by hand);
3. otherwise regenerate the synthetic world (``dynamix synth``, deterministic: the same
   preset and seed hash to the same ``.dvc`` entry) and ``dvc commit`` it.

A ``raw_dir`` outside any DVC repository, or not tracked by one, is used as it is (tests
and ad-hoc worlds under ``/tmp``). This module is the only place the pipeline touches DVC.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from dynamix.config import Params
from dynamix.errors import DynamixError

log = logging.getLogger(__name__)


def _existing_ancestor(path: Path) -> Path:
    while not path.is_dir() and path != path.parent:
        path = path.parent
    return path


def _tracking_file(raw: Path) -> tuple[str, str] | None:
    """``(repo root, .dvc file)`` of the DVC output that is exactly ``raw``, else None."""
    from dvc.exceptions import NotDvcRepoError
    from dvc.repo import Repo

    try:
        root = Repo.find_root(str(_existing_ancestor(raw)))
    except NotDvcRepoError:
        return None
    with Repo(root) as repo:
        for stage in repo.index.stages:
            if not str(stage.path).endswith(".dvc"):  # dvc.yaml stages build their outputs
                continue
            for out in stage.outs:
                if Path(out.fs_path).resolve() == raw:
                    return root, str(Path(stage.path).relative_to(root))
    return None


def _up_to_date(repo: Any, dvc_file: str) -> bool:
    return not repo.status(targets=[dvc_file])


def resolve_data(params: Params) -> dict[str, Any]:
    """Bring ``data.raw_dir`` to its tracked version; returns what was done and why.

    ``action`` is one of ``untracked`` (no DVC file tracks it: used as is),
    ``up-to-date``, ``checked-out`` (restored from the DVC cache) or ``generated``
    (synthetic world regenerated and committed; ``changed`` says whether its hash moved,
    i.e. the generator or preset changed since the ``.dvc`` file was committed).
    """
    raw = Path(params.data.raw_dir).resolve()
    tracked = _tracking_file(raw)
    if tracked is None:
        if not raw.is_dir() or not any(raw.iterdir()):
            raise DynamixError(
                f"data.raw_dir={params.data.raw_dir}: no data and no DVC file tracks it; "
                f"generate it with `dynamix synth --preset {params.data.preset} --out "
                f"{params.data.raw_dir}` or point data.raw_dir at your datasets"
            )
        log.info("%s is not tracked by DVC: using it as it is", raw)
        return {"action": "untracked", "raw_dir": str(raw)}

    from dvc.repo import Repo

    root, dvc_file = tracked
    result = {"raw_dir": str(raw), "dvc_repo": root, "dvc_file": dvc_file}
    target = str(Path(root) / dvc_file)  # DVC reads relative targets from the cwd
    with Repo(root) as repo:
        if _up_to_date(repo, target):
            log.info("%s matches %s", raw, dvc_file)
            return {**result, "action": "up-to-date"}
        try:
            repo.checkout(targets=[target])
        except Exception as exc:  # missing cache objects: fall back to regenerating
            log.warning("dvc checkout %s failed (%s)", dvc_file, str(exc).splitlines()[0])
        else:
            if _up_to_date(repo, target):
                log.info("%s restored from the DVC cache", raw)
                return {**result, "action": "checked-out"}
    return {**result, **_regenerate(params, raw, root, dvc_file)}


def _regenerate(params: Params, raw: Path, root: str, dvc_file: str) -> dict[str, Any]:
    from dvc.repo import Repo

    from dynamix.synth import generate_world

    target = Path(root) / dvc_file
    before = target.read_text()
    log.info("generating the synthetic world (preset %s) into %s", params.data.preset, raw)
    generate_world(raw, preset=params.data.preset, seed=params.data.seed, overwrite=True)
    with Repo(root) as repo:
        repo.commit(str(target), force=True)
    changed = target.read_text() != before
    if changed:
        log.warning(
            "the generated data differs from the committed %s (generator or data.preset "
            "changed); commit %s to version it",
            dvc_file,
            dvc_file,
        )
    return {"action": "generated", "changed": changed}
