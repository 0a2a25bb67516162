"""What a tracked run records about its code and data: git state, DVC hash, preset, protocol.

Plain functions (no MLflow): :mod:`flows.tracking` turns them into run tags, the run's name
(``duke+msmt+cuhk→market+night · dynamix · seed 0``) and the experiment's description, so
that the MLflow UI tells runs apart at a glance instead of showing ``agreeable-hare-941``.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import yaml

from dynamix.config import Params
from dynamix.data.manifest import manifest_path


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


def dvc_remote(dvc_dir: str | os.PathLike[str] = ".dvc") -> str | None:
    """URL of the default DVC remote (``core.remote`` in ``.dvc/config`` or ``config.local``).

    Read by hand: DVC's INI files indent their keys, which :mod:`configparser` takes for
    continuation lines, and starting ``dvc`` costs a second.
    """
    sections: dict[str, dict[str, str]] = {}
    for name in ("config", "config.local"):
        path = Path(dvc_dir) / name
        if not path.is_file():
            continue
        section = ""
        for line in path.read_text().splitlines():
            line = line.strip()
            if line.startswith("[") and line.endswith("]"):
                section = line[1:-1].strip("'")
            elif "=" in line and not line.startswith(("#", ";")):
                key, value = (part.strip() for part in line.split("=", 1))
                sections.setdefault(section, {})[key] = value
    remote = sections.get("core", {}).get("remote")
    return sections.get(f'remote "{remote}"', {}).get("url") if remote else None


@dataclass(frozen=True)
class DataInput:
    """One dataset version a run used, as MLflow shows it in the run's Datasets panel."""

    name: str  # data/raw, manifests/market-syn
    digest: str  # the DVC md5 of data/raw; md5 of a manifest file (MLflow keeps 36 characters)
    source: str  # the local path (absolute)
    context: str  # training | evaluation
    tags: dict[str, str] = field(default_factory=dict)


def data_inputs(params: Params, dvc_file: str | os.PathLike[str] = "data.dvc") -> list[DataInput]:
    """The data version of a run: ``data.raw_dir`` by its DVC md5 (when ``data.dvc`` tracks
    it) and each dataset's manifest by the md5 of its file (when written).

    The manifests are what the trainer read; hashing them is cheap (one parquet file per
    dataset), so the version is recorded also for a world that DVC does not track.
    """
    d = params.data
    out = []
    md5 = data_md5(params, dvc_file)
    if md5 not in ("untracked", "unknown"):
        tags = {"dvc.file": str(dvc_file), "dvc.md5": md5}
        remote = dvc_remote(Path(dvc_file).parent / ".dvc")
        if remote:
            tags["dvc.remote"] = remote
        raw = Path(d.raw_dir)
        out.append(DataInput(str(d.raw_dir).rstrip("/"), md5[:36], str(raw.resolve()), "training", tags))
    single = d.single_camera if params.train.sampler.single_camera else ()  # the ablation trains without
    groups = [(d.sources, "training"), (single, "training"), (d.targets, "evaluation")]
    for specs, context in groups:
        for spec in specs:
            path = manifest_path(params, spec.name)
            if path.is_file():
                digest = hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()
                out.append(DataInput(f"manifests/{spec.name}", digest, str(path.resolve()), context))
    return out


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
        "variant": variant(params),
        "seed": str(params.train.seed),
    }


def short_name(dataset: str) -> str:
    """``market-syn`` -> ``market``, ``cuhk03-np`` -> ``cuhk03``: names that fit a run name."""
    return dataset.split("-")[0]


def protocol_name(params: Params) -> str:
    """``duke+msmt+cuhk→market+night``: the labelled sources, then the unseen targets."""
    d = params.data
    sources = "+".join(short_name(s.name) for s in d.sources)
    return f"{sources}→{'+'.join(short_name(s.name) for s in d.targets)}"


def variant(params: Params) -> str:
    """Which DynaMix modules are on: ``dynamix`` (all), else the ablation's names for the
    switched-off ones (scripts/ablation.py), e.g. ``no_relabeling`` or ``multi_camera_only``
    (no single-camera data, so nothing to relabel), joined by ``+``."""
    t = params.train
    if not t.sampler.single_camera:
        off = ["multi_camera_only"]
    else:
        off = [] if t.relabel.enabled else ["no_relabeling"]
    off += [] if t.loss.centroid else ["no_centroids"]
    off += [] if t.sampler.matching else ["random_mixing"]
    return "+".join(off) or "dynamix"


def run_name(params: Params, variant_name: str | None = None) -> str:
    """``<protocol> · <variant> · seed <train.seed>``: the default MLflow run name."""
    return f"{protocol_name(params)} · {variant_name or variant(params)} · seed {params.train.seed}"


def experiment_description(params: Params, *, ablation: bool = False) -> str:
    """The experiment's note in the MLflow UI (``mlflow.note.content``, Markdown)."""
    d = params.data
    single = ", ".join(s.name for s in d.single_camera) or "none"
    head = (
        "DynaMix ablation: one run per variant × seed (`scripts/ablation.py`), the metrics "
        "of the final step on the unseen targets. Compare runs by the `variant` and `seed` "
        "tags."
        if ablation
        else "DynaMix person re-ID: one run per training run (the Prefect flow "
        "`dynamix-pipeline` or the DVC stage `dynamix track`), named "
        "`<sources>→<targets> · <variant> · seed <n>`."
    )
    return "\n\n".join(
        [
            head,
            f"Trained on labelled multi-camera sources {', '.join(s.name for s in d.sources)} "
            f"and single-camera data {single}; evaluated on the unseen target domains "
            f"{', '.join(s.name for s in d.targets)}.",
            "Params: every params.yaml key, flattened. Tags: `variant`, `seed`, "
            "`dynamix.protocol`, `git.commit`, `dvc.data_md5`. Metrics: "
            "`<target>/<rank1|mAP|mINP>`, `mean_mAP`; `train/*`, `relabel/*` curves and the "
            "`best/*` metrics of the logged model for pipeline runs. Artifacts of a pipeline "
            "run: the GX Data Docs of its data gate (`validation/reports/data_docs/`), plots, "
            "checkpoints, the model.",
        ]
    )
