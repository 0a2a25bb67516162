"""scripts/env.sh (for shells) and dynamix.offline (for Python) must say the same thing."""

import re
from pathlib import Path

from dynamix.offline import OFFLINE_ENV, apply_offline_env

ENV_SH = Path(__file__).resolve().parents[1] / "scripts" / "env.sh"
SHELL_ONLY = {"PIP_DISABLE_PIP_VERSION_CHECK"}  # pip runs only from the shell scripts


def test_env_sh_exports_exactly_the_python_list():
    exported = dict(re.findall(r"^export (\w+)=(\S+)$", ENV_SH.read_text(), flags=re.M))
    assert {k: v for k, v in exported.items() if k not in SHELL_ONLY} == OFFLINE_ENV


def test_apply_keeps_a_value_the_caller_set():
    env = {"DO_NOT_TRACK": "false"}
    apply_offline_env(env)
    assert env["DO_NOT_TRACK"] == "false"
    assert {k: env[k] for k in OFFLINE_ENV if k != "DO_NOT_TRACK"} == {
        k: v for k, v in OFFLINE_ENV.items() if k != "DO_NOT_TRACK"
    }
