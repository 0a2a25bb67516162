"""The environment that keeps every tool offline and silent.

The machines this runs on reach nothing but package registries, so a tool that phones
home (telemetry, analytics, a model hub) would hang or log errors mid-run. Shell entry
points source ``scripts/env.sh``; Python entry points that may run without it (pytest,
the benchmark runner, the CI reproducibility script) call :func:`apply_offline_env`.
``tests/test_offline_env.py`` keeps the two lists the same.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

OFFLINE_ENV: dict[str, str] = {
    "DO_NOT_TRACK": "true",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DVC_NO_ANALYTICS": "1",
    "ITERATIVE_DO_NOT_TRACK": "1",
    "GX_ANALYTICS_ENABLED": "false",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
}


def apply_offline_env(env: MutableMapping[str, str] = os.environ) -> None:
    """Set each variable unless the caller already chose a value for it."""
    for key, value in OFFLINE_ENV.items():
        env.setdefault(key, value)
