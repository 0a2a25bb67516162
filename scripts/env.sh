# Keep every tool offline and silent: no telemetry, no hub downloads. Sourced by run.sh
# and .ci/run; Python entry points (pytest, benchmarks) set the same list from
# dynamix/offline.py (tests/test_offline_env.py keeps the two equal).
export DO_NOT_TRACK=true
export MLFLOW_DISABLE_TELEMETRY=true
export PREFECT_SERVER_ANALYTICS_ENABLED=false
export DVC_NO_ANALYTICS=1
export ITERATIVE_DO_NOT_TRACK=1
export GX_ANALYTICS_ENABLED=false
export HF_HUB_OFFLINE=1
export TRANSFORMERS_OFFLINE=1
export PIP_DISABLE_PIP_VERSION_CHECK=1
