#!/usr/bin/env bash
# The one entry point on a fresh machine (only Python 3.11 needed): it creates .venv,
# installs the project from pyproject.toml when that file changed, then runs a job.
#
#   bash scripts/run.sh demo    # synthetic world -> DVC -> manifests -> evaluation (dvc repro)
#   bash scripts/run.sh test    # ruff + the whole pytest suite
#   bash scripts/run.sh repro   # reproducibility job: tiny pipeline twice + reference metrics
#
# Environment: PYTHON (interpreter to build the venv from), DYNAMIX_VENV (default .venv),
# DYNAMIX_EXTRAS (default cpu,dev; use gpu,dev on a CUDA machine), DYNAMIX_PRESET
# (synthetic preset for the demo; default from params.yaml).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/env.sh
source scripts/env.sh

VENV=${DYNAMIX_VENV:-.venv}
EXTRAS=${DYNAMIX_EXTRAS:-cpu,dev}

find_python() {
  for cand in "${PYTHON:-}" python3.11 python3 python; do
    [ -n "$cand" ] || continue
    if command -v "$cand" >/dev/null 2>&1 &&
       "$cand" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
      echo "$cand"; return 0
    fi
  done
  echo "run.sh: error: Python 3.11 not found; install it or set PYTHON=/path/to/python3.11" >&2
  return 1
}

setup() {
  if [ ! -x "$VENV/bin/python" ]; then
    local py; py=$(find_python)
    echo "==> creating $VENV with $py"
    "$py" -m venv "$VENV"
  fi
  local want stamp="$VENV/.dynamix-install"
  want="$(cat pyproject.toml | sha256sum | cut -c1-16) [$EXTRAS]"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "==> installing dynamix[$EXTRAS] into $VENV (torch is large: a few minutes the first time)"
    if ! "$VENV/bin/python" -m pip install -e ".[$EXTRAS]" >"$VENV/install.log" 2>&1; then
      grep -v '^WARNING: Location' "$VENV/install.log" | tail -n 30 >&2
      echo "run.sh: error: pip install failed; full log in $VENV/install.log" >&2
      return 1
    fi
    echo "$want" >"$stamp"
  fi
  export PATH="$(cd "$VENV" && pwd)/bin:$PATH"  # absolute, whether VENV is relative or not
}

ensure_data() {
  # data/raw is tracked by data.dvc. Restore it from the DVC cache if we can; otherwise
  # regenerate it: the generator is deterministic, so the result hashes to data.dvc again.
  if dvc status data.dvc 2>/dev/null | grep -q "Data and pipelines are up to date"; then
    echo "==> data/raw matches data.dvc"
    return 0
  fi
  if dvc checkout data.dvc >/dev/null 2>&1 &&
     dvc status data.dvc 2>/dev/null | grep -q "Data and pipelines are up to date"; then
    echo "==> data/raw restored from the DVC cache"
    return 0
  fi
  local preset=${DYNAMIX_PRESET:-$(python -c 'from dynamix.config import load_params; print(load_params().data.preset)')}
  echo "==> generating the synthetic world (preset: $preset) into data/raw"
  dynamix synth --preset "$preset" --out data/raw --overwrite
  dvc commit --force data.dvc >/dev/null
  if ! git diff --quiet -- data.dvc 2>/dev/null; then
    echo "==> note: the generated data differs from the committed data.dvc (generator or preset changed); commit data.dvc to version it"
  fi
}

cmd=${1:-}
case "$cmd" in
  demo)
    setup
    ensure_data
    echo "==> dvc repro"
    dvc repro
    echo "==> metrics on the targets (metrics/*.json; every metric: dvc metrics show)"
    python scripts/demo_summary.py
    echo "==> curves: .venv/bin/dvc plots show -> dvc_plots/index.html (self-contained, renders offline)"
    echo "==> MLflow UI: .venv/bin/mlflow ui --backend-store-uri sqlite:///mlflow.db (http://127.0.0.1:5000)"
    ;;
  test)
    setup
    echo "==> ruff"
    ruff check .
    ruff format --check .
    echo "==> pytest"
    shift
    pytest "$@"
    ;;
  repro)
    setup
    echo "==> reproducibility: the tiny pipeline twice (same seed), then vs reference/tiny_metrics.json"
    shift
    python scripts/repro_check.py "$@"
    ;;
  setup)
    setup
    echo "==> ready: source $VENV/bin/activate"
    ;;
  *)
    echo "usage: bash scripts/run.sh {demo|test|repro|setup} [pytest or repro_check args]" >&2
    exit 2
    ;;
esac
