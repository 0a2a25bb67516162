"""The repo's real DVC pipeline (dvc.yaml) on the tiny synthetic world, in a throwaway repo.

    python scripts/tiny_pipeline.py DEST [--seed 0]     # build DEST, run `dvc repro` once

:func:`build_repo` makes ``DEST`` a git + DVC repo holding copies of ``dvc.yaml``, the code
its stages depend on (``dynamix/``, ``flows/``), a tiny synthetic world tracked by
``data.dvc``, and a ``params.yaml``: the repo's own, with :data:`TINY_RECIPE` written over it
and the MLflow store in ``DEST/mlflow.db``. :func:`repro` then runs the real ``dvc repro``
there, the stages importing the copied code (``PYTHONPATH=DEST``), so what DVC hashes is
what runs. Used by ``tests/pipeline/test_dvc_repro.py`` and ``scripts/repro_check.py``.

:data:`TINY` is the one tiny override list (the tests import it: pytest puts ``scripts/``
on the path, see ``pyproject.toml``).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dynamix.config import apply_override
from dynamix.offline import OFFLINE_ENV

REPO = Path(__file__).resolve().parents[1]
COPIED = ("dvc.yaml", ".dvcignore", ".gitignore", "dynamix", "flows", "vendor")  # stages need
GIT_ID = ["-c", "user.name=dynamix-ci", "-c", "user.email=ci@dynamix.invalid"]

# The tiny override list, the one copy: the ``--set`` items that shrink a run of the recipe
# to seconds on a CPU. Six steps of a ViT on 64x32 crops (4x2 patches), batches of 16
# ((2 + 2) ids x 4 images); relabeling windows end at steps 2, 4 and 6 (the closing one);
# evaluations and checkpoints at 3 and 6; no DataLoader workers (bit-identical reruns). The
# tests train with it over params.yaml (tests/train; tests/infer and tests/pipeline add a
# shorter schedule after it, later items win), and the pinned recipe below starts from it,
# so they cannot drift apart.
TINY = [
    "model.img_height=64",
    "model.img_width=32",
    "model.drop_path_rate=0.0",
    "train.iters=6",
    "train.num_workers=0",
    "train.eval_every=3",
    "train.checkpoint_every=3",
    "train.warmup_iters=2",
    "train.eval_batch_size=64",
    "train.sampler.p_m=2",
    "train.sampler.p_s=2",
    "train.sampler.k=4",
    "train.relabel.warmup=2",
    "train.relabel.every=2",
    "train.relabel.max_merge_fraction=1.0",
]


def with_overrides(tree: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """A copy of ``tree`` with ``key=value`` items set in it, parsed as ``--set`` parses them,
    so :data:`TINY` means the same here as on a command line."""
    out = copy.deepcopy(tree)
    for item in overrides:
        apply_override(out, item)
    return out


# The whole training recipe, pinned: :data:`TINY` plus every other training key, so
# params.yaml's defaults may change and this run must not (scripts/repro_check.py compares
# it with a committed reference). A key params.yaml no longer has fails loudly (load_params
# rejects unknown keys). A depth-4 ViT on the CPU: bit-identical reruns (see
# scripts/repro_check.py).
TINY_RECIPE: dict[str, Any] = with_overrides(
    {
        "data": {"preset": "tiny"},
        "model": {
            "arch": "vit_tiny_patch16_224",
            "depth": 4,
            "global_pool": "token",
            "pretrained_path": None,
            "momentum": 0.9,
            "momentum_warmup": 2,
        },
        "train": {
            "lr": 1.0e-3,
            "min_lr_ratio": 0.01,
            "weight_decay": 0.05,
            "grad_clip": 1.0,
            "amp": False,
            "device": "cpu",
            "eval_model": "momentum",
            "centroid_momentum": 0.2,
            "centroid_dtype": "fp16",
            "bank_init": "first_sight",
            "selection": {"ids_per_source": 20, "metric": "mAP"},
            "sampler": {
                "matching": True,
                "single_camera": True,
                "keep_batch_size": False,
                "ids_per_video": 2,
            },
            "loss": {
                "centroid": True,
                "temperature": 0.05,
                "num_negatives": 4096,
                "hard_fraction": 0.5,
                "w_centroid_multi": 1.0,
                "w_centroid_single": 0.5,
                "w_triplet": 1.0,
                "triplet_margin": 0.3,
                "triplet_cross_negatives": True,
                "w_consistency": 0.5,
                "consistency_kind": "cosine",
                "w_id": 1.0,
                "id_temperature": 0.05,
                "id_label_smoothing": 0.1,
                "single_negatives": "video",
            },
            "relabel": {
                "enabled": True,
                "filter": True,
                "filter_history": 4096,
                "filter_min_history": 8,  # a tiny run judges a few dozen images
                "merge_scope": "video",
                "merge_mad": 1.0,
                "merge_max_age": 100,
                "tau_filter": 0.5,
                "tau_relabel": 0.7,
                "margin": 0.1,
                "tau_merge": 0.9,
                "topk": 8,
                "mutual": False,
                "merge": True,
                "filter_mad": None,
                "reassign": True,
                "nlist": 0,
            },
        },
        "tracking": {"log_every": 1, "ranked_list_queries": 2},
    },
    TINY,
)


@dataclass
class TinyRepo:
    root: Path
    seed: int | None = None  # None: a finished repo opened for reading

    @property
    def store(self) -> str:
        """The MLflow tracking URI written into params.yaml."""
        return f"sqlite:///{self.root / 'mlflow.db'}"

    def path(self, rel: str) -> Path:
        return self.root / rel

    def json(self, rel: str) -> Any:
        return json.loads((self.root / rel).read_text())

    def events(self, kind: str) -> list[dict[str, Any]]:
        """``runs/train/log.jsonl`` events of one kind (step, eval, relabel, ...)."""
        lines = (self.root / "runs/train/log.jsonl").read_text().splitlines()
        return [e for e in map(json.loads, filter(None, lines)) if e["event"] == kind]


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``over`` written into it, nested dicts merged key by key."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def tiny_params(raw: dict[str, Any], root: Path, seed: int) -> dict[str, Any]:
    """The repo's params (``raw``) with the pinned tiny recipe, ``seed`` and the store in
    ``root``; every path stays relative, as dvc.yaml names them."""
    seeded = {"data": {"seed": seed}, "train": {"seed": seed}}
    store = {"tracking": {"uri": f"sqlite:///{root / 'mlflow.db'}", "artifact_location": None}}
    return merge(merge(merge(raw, TINY_RECIPE), seeded), store)


def env_for(root: Path) -> dict[str, str]:
    """The environment of every command in the tiny repo: offline, its own copy of the code
    first on the path, no bytecode written into the hashed code dirs, this venv's tools.

    One CPU thread per process: a 6-step run gains nothing from more, a busy 2-core runner
    loses 3x to oversubscription, and results cannot depend on the runner's core count.
    """
    env = {**os.environ, **OFFLINE_ENV, "PYTHONPATH": str(root), "PYTHONDONTWRITEBYTECODE": "1"}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("MLFLOW_TRACKING_URI", None)  # params.yaml decides the store
    return env


def sh(root: Path, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` in ``root``; on failure raise with its whole output."""
    done = subprocess.run(cmd, cwd=root, env=env_for(root), capture_output=True, text=True)
    if check and done.returncode != 0:
        raise RuntimeError(f"`{' '.join(cmd)}` in {root} exited {done.returncode}:\n{done.stdout}{done.stderr}")
    return done


def _copy(name: str, root: Path) -> None:
    src = REPO / name
    if src.is_dir():
        shutil.copytree(src, root / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    else:
        shutil.copy2(src, root / name)


def track_data_as_data_dvc(root: Path) -> None:
    """``dvc add data/raw``, moved to the repo's layout: ``data.dvc`` at the root."""
    sh(root, "dvc", "add", "-q", "data/raw")
    spec = yaml.safe_load((root / "data/raw.dvc").read_text())
    spec["outs"][0]["path"] = "data/raw"
    (root / "data.dvc").write_text(yaml.safe_dump(spec, sort_keys=False))
    (root / "data/raw.dvc").unlink()
    sh(root, "dvc", "status", "data.dvc")  # a broken data.dvc fails here, not in a stage


def build_repo(root: Path, seed: int = 0) -> TinyRepo:
    """Make ``root`` (new or empty) a committed git + DVC repo, ready for ``dvc repro``."""
    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    if any(root.iterdir()):
        raise FileExistsError(f"{root}: not empty")
    for name in COPIED:
        _copy(name, root)
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    (root / "params.yaml").write_text(yaml.safe_dump(tiny_params(raw, root, seed), sort_keys=False))
    sh(root, "git", "init", "-q")
    sh(root, "dvc", "init", "-q")
    sh(root, "dynamix", "synth", "--preset", "tiny", "--seed", str(seed), "--workers", "1", "--out", "data/raw")
    track_data_as_data_dvc(root)
    imported = sh(root, sys.executable, "-c", "import dynamix, flows; print(dynamix.__file__)")
    if not Path(imported.stdout.strip()).is_relative_to(root):
        raise RuntimeError(f"the stages would import {imported.stdout.strip()}, not {root}")
    sh(root, "git", "add", "-A")
    sh(root, "git", *GIT_ID, "commit", "-q", "-m", f"tiny pipeline, seed {seed}")
    return TinyRepo(root, seed)


def repro(repo: TinyRepo) -> str:
    """``dvc repro`` in the tiny repo; returns its output (stdout then stderr)."""
    done = sh(repo.root, "dvc", "repro")
    return done.stdout + done.stderr


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dest", type=Path, help="a new or empty folder")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    repo = build_repo(args.dest, args.seed)
    print(repro(repo))
    return 0


if __name__ == "__main__":
    sys.exit(main())
