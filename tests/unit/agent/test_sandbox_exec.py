"""spool_agent.sandbox_exec for real: a child confined by a plan, then exec'd (T26's network
and identity parts, which the e2e platform cannot switch per test)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from spool_agent.sandbox import RunnerSandbox, SandboxLimits, SandboxPlan

PROBE = """
import json, os, resource, socket
out = {"uid": os.getuid(), "cwd": os.getcwd(), "home": os.environ["HOME"]}
for name in ("RLIMIT_AS", "RLIMIT_NOFILE", "RLIMIT_FSIZE", "RLIMIT_NPROC"):
    out[name] = resource.getrlimit(getattr(resource, name))[0]
def attempt(key, action):
    try:
        action()
        out[key] = "allowed"
    except OSError as e:
        out[key] = e.strerror
attempt("broker", lambda: socket.create_connection(("127.0.0.1", 5672), 2))
attempt("etc", lambda: open("/etc/spool-t26", "w"))
attempt("environ", lambda: open(f"/proc/{os.getppid()}/environ", "rb").read())
print(json.dumps(out))
"""
LIMITS = SandboxLimits(2 * 1024**3, 256, 1024**2, 64)


def _run(tmp_path: Path, plan: SandboxPlan) -> dict[str, object]:
    work = tmp_path / "codebase"
    work.mkdir()
    sandbox = RunnerSandbox(plan, str(work))
    command = [sys.executable, "-I", "-m", "spool_agent.sandbox_exec"]
    command += [*sandbox.wrapper_args(1), "--", sys.executable, "-c", PROBE]
    done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr + done.stdout
    result: dict[str, object] = json.loads(done.stdout)
    return result


@pytest.mark.skipif(os.getuid() != 0, reason="a uid change and namespaces need root")
def test_as_root_user_code_gets_its_uid_limits_and_no_network(tmp_path: Path) -> None:
    out = _run(tmp_path, SandboxPlan(LIMITS, uid=1_000_123_457, network=False))
    assert out["uid"] == 1_000_123_457
    assert out["cwd"] == out["home"] == str(tmp_path / "codebase")
    assert (out["RLIMIT_AS"], out["RLIMIT_NOFILE"]) == (2 * 1024**3, 256)
    assert (out["RLIMIT_FSIZE"], out["RLIMIT_NPROC"]) == (1024**2, 64)
    assert out["broker"] == "Network is unreachable"
    assert out["etc"] == "Permission denied"
    assert out["environ"] == "Permission denied"  # its parent, root: not its uid
    assert (tmp_path / "codebase").stat().st_uid == 1_000_123_457


def test_with_network_kept_and_no_uid_change_the_limits_still_apply(tmp_path: Path) -> None:
    out = _run(tmp_path, SandboxPlan(SandboxLimits(2 * 1024**3, 256, 1024**2), uid=None))
    assert out["uid"] == os.getuid()
    assert out["RLIMIT_FSIZE"] == 1024**2
    assert out["broker"] != "Network is unreachable"


def test_a_plan_that_cannot_be_applied_fails_with_an_init_frame(tmp_path: Path) -> None:
    sandbox = RunnerSandbox(SandboxPlan(LIMITS, uid=None), str(tmp_path / "missing"))
    command = [sys.executable, "-I", "-m", "spool_agent.sandbox_exec"]
    command += [*sandbox.wrapper_args(1), "--", sys.executable, "-c", "print('ran')"]
    done = subprocess.run(command, capture_output=True, timeout=30, check=False)
    assert done.returncode != 0
    assert b'"SandboxError"' in done.stdout
    assert b"ran" not in done.stdout
