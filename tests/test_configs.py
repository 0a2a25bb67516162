"""The real-data configs (configs/*.yaml): each a full params file that loads, holds the GPU
recipe, never trains on its target, is current with params.yaml, and whose datasets parse
when the releases are laid out as configs/README.md says (exact-layout miniatures)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from dynamix.config import Params, flatten, load_params
from dynamix.prepare import prepare_manifests

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
NAMES = sorted(p.stem for p in CONFIGS.glob("*.yaml"))


def load_module(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


gen = load_module(CONFIGS / "generate.py", "configs_generate")
builders = load_module(REPO / "tests" / "data" / "conftest.py", "data_builders")  # the loaders' miniatures
lupnl = load_module(REPO / "tests" / "data" / "test_luperson_nl.py", "lupnl_builders")


def config(name: str) -> Params:
    return load_params(CONFIGS / f"{name}.yaml")


def test_one_config_per_protocol() -> None:
    assert NAMES == sorted(gen.PROTOCOLS) == ["dc3ms-to-m", "mc3ms-to-d", "mdc3-to-ms", "mdms-to-c3"]


@pytest.mark.parametrize("name", NAMES)
def test_config_is_params_yaml_with_the_documented_overrides(name: str) -> None:
    """Every key of params.yaml, its values but where the generator says: fails while stale."""
    base = yaml.safe_load((REPO / "params.yaml").read_text())
    on_disk = yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())
    assert on_disk == gen.expected(base, gen.overrides(name)), f"stale: run python configs/generate.py ({name})"
    assert isinstance(config(name), Params)  # typed, every Range and choice checked


def test_configs_differ_only_where_the_protocol_does() -> None:
    protocol_keys = ("data.sources.", "data.targets.", "promotion.thresholds.", "tracking.experiment")
    protocol_keys += ("tracking.registered_model",)
    flat = {name: flatten(config(name)) for name in NAMES}
    first = flat[NAMES[0]]
    for name in NAMES[1:]:
        keys = set(first) | set(flat[name])
        differ = sorted(k for k in keys if first.get(k) != flat[name].get(k))
        assert differ and all(k.startswith(protocol_keys) for k in differ), differ


@pytest.mark.parametrize("name", NAMES)
def test_gpu_recipe(name: str) -> None:
    p = config(name)
    assert (p.model.arch, p.model.depth, p.model.img_height, p.model.img_width) == (
        "vit_base_patch16_224",
        None,
        256,
        128,
    )
    assert p.model.pretrained_path == "weights/vit_base_patch16_224.augreg2_in21k_ft_in1k.safetensors"
    assert p.train.amp is True and p.train.device == "auto" and p.train.nproc_per_node == 4
    assert p.model.momentum == 0.999 and p.train.iters == 40000
    assert p.data.raw_dir == "data/real" and all(s.root.startswith("data/real/") for s in p.data.all_datasets())
    assert p.validation.expected_counts == {}  # no synthetic counts: the published ones apply
    assert p.validation.published_counts["msmt17"].train.images == 32621
    assert p.validation.published_counts["luperson-nl"].check is False  # re-extracted copies are smaller
    assert [s.format for s in p.data.single_camera] == ["luperson-nl"]
    assert set(p.promotion.thresholds) == {"default", p.data.targets[0].name}
    assert p.tracking.registered_model == f"dynamix-reid-{name}"  # one champion per protocol


@pytest.mark.parametrize("name", NAMES)
def test_never_trains_on_its_target(name: str) -> None:
    p = config(name)
    sources = [*p.data.sources, *p.data.single_camera]
    (target,) = p.data.targets
    assert target.name not in {s.name for s in sources}
    assert Path(target.root).resolve() not in {Path(s.root).resolve() for s in sources}
    assert target.format not in {s.format for s in sources}  # leave-one-out: the target's domain is unseen
    assert all(s.options.get("combine_all") is False for s in p.data.sources)  # M3L: training splits only
    four = {"market1501", "dukemtmc", "msmt17", "cuhk03-np"}
    assert {s.format for s in p.data.sources} | {target.format} == four


def lay_out_releases(top: Path) -> Path:
    """The tree of configs/README.md under ``top``/data/real, with the loaders' miniatures."""
    real = top / "data" / "real"
    builders.build_folder_dataset(real / "Market-1501-v15.09.15", builders.MARKET_FILES, writer=builders.write_jpeg)
    builders.build_folder_dataset(real / "DukeMTMC-reID", builders.DUKE_FILES)
    for key, rows in builders.MSMT_LISTS.items():
        for rel, _ in rows:
            builders.touch(real / "MSMT17_V1" / ("train" if key in ("train", "val") else "test") / rel)
        builders.write_lines(real / "MSMT17_V1" / f"list_{key}.txt", [f"{rel} {pid}" for rel, pid in rows])
    for variant in ("labeled", "detected"):
        builders.build_folder_dataset(real / "cuhk03-np" / variant, builders.CUHK_FILES)
    folders = lupnl.build_folders(top / "lupnl-folders")
    lupnl.convert_lmdb(folders, real / "LUPerson-NL")  # the LMDB form: lmdb/ + keys.pkl
    return real


@pytest.fixture(scope="module")
def releases(tmp_path_factory: pytest.TempPathFactory) -> Path:
    top = tmp_path_factory.mktemp("gpu-box")
    lay_out_releases(top)
    return top


@pytest.mark.parametrize("name", NAMES)
def test_datasets_parse(name: str, releases: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`dynamix prepare` on the config, run where data/real holds the releases."""
    monkeypatch.chdir(releases)
    p = load_params(CONFIGS / f"{name}.yaml", [f"data.manifests_dir=manifests/{name}"])
    summary = prepare_manifests(p)
    assert list(summary) == [s.name for s in p.data.all_datasets()]
    for spec in p.data.sources:  # the miniatures' train images (junk dropped, MSMT17 val merged)
        want = {"market1501": 4, "dukemtmc": 3, "msmt17": 4, "cuhk03": 3}[spec.name]
        assert summary[spec.name]["splits"]["train"]["images"] == want
    (target,) = p.data.targets
    assert {"query", "gallery"} <= set(summary[target.name]["splits"])
    assert summary["luperson-nl"]["splits"]["train"]["images"] == len(lupnl.KEYS)
    assert summary["luperson-nl"]["release_root"] == "data/real/LUPerson-NL"


def test_dvc_exp_run_with_a_config(releases: Path, tmp_path: Path) -> None:
    """The documented one-liner (cp configs/X.yaml params.yaml && dvc exp run), on the prepare
    stage: dvc.yaml's data deps follow data.raw_dir, and the stage reads the copied config."""
    dvc = Path(sys.executable).parent / "dvc"
    if not dvc.exists():
        pytest.skip("dvc is not installed in this environment")
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copytree(releases / "data", repo / "data", symlinks=True)
    for name in ("dvc.yaml", "params.yaml", ".dvcignore"):
        shutil.copy(REPO / name, repo / name)
    (repo / "dynamix").symlink_to(REPO / "dynamix")  # the stage's code deps
    env = {**os.environ, "PATH": f"{dvc.parent}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(REPO)}
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t.invalid"]
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"], [*git, "add", "-A"], [*git, "commit", "-qm", "base"]):
        subprocess.run(cmd, cwd=repo, env=env, check=True, capture_output=True)
    shutil.copy(CONFIGS / "dc3ms-to-m.yaml", repo / "params.yaml")
    run = subprocess.run(
        ["dvc", "exp", "run", "-n", "dc3ms-to-m", "prepare"], cwd=repo, env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stdout + run.stderr
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]["prepare"]
    assert "data/real" in [d["path"] for d in lock["deps"]]  # ${data.raw_dir}, resolved from the config
    assert lock["params"]["params.yaml"]["data.targets"][0]["name"] == "market1501"
    assert sorted(p.name for p in (repo / "data/manifests").glob("*.parquet")) == [
        "cuhk03.parquet",
        "dukemtmc.parquet",
        "luperson-nl.parquet",
        "market1501.parquet",
        "msmt17.parquet",
    ]
