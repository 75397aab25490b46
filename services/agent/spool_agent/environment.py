"""Pure: the environment user code sees. It never includes the agent's own credentials."""

from __future__ import annotations

from collections.abc import Mapping

# Variables a Python program reasonably expects; everything else, and every SPOOL_* variable
# (broker URL, database URL, the agent's token), stays with the agent.
PASSED_THROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "VIRTUAL_ENV")


def runner_environment(
    agent_env: Mapping[str, str], service_env: Mapping[str, str]
) -> dict[str, str]:
    env = {k: agent_env[k] for k in PASSED_THROUGH if k in agent_env}
    # pip settings (an index, find-links, a proxy) reach user code that installs packages.
    env.update({k: v for k, v in agent_env.items() if k.startswith("PIP_")})
    env.update({k: v for k, v in service_env.items() if not k.startswith("SPOOL_")})
    env["PYTHONUNBUFFERED"] = "1"
    return env
