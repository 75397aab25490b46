"""Start, stop and inspect a local Spool: gateway, scheduler, autoscaler, trigger-engine.

    python scripts/platform_ctl.py up      # start what is not running, wait for the gateway
    python scripts/platform_ctl.py down    # SIGTERM everything (agents drain), wait, then SIGKILL
    python scripts/platform_ctl.py status

State lives in .spool/: pids/, logs/, admin-token (created once, mode 0600).
"""

from __future__ import annotations

import base64
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
STATE = ROOT / ".spool"
SERVICES = ("gateway", "scheduler", "autoscaler", "trigger-engine")
MODULES = {name: "spool_" + name.replace("-", "_") for name in SERVICES}


def gateway_url() -> str:
    return os.environ.get("SPOOL_GATEWAY_URL", "http://127.0.0.1:8080")


def admin_token() -> str:
    """SPOOL_ADMIN_TOKEN if set, else the token in .spool/admin-token (created once)."""
    if token := os.environ.get("SPOOL_ADMIN_TOKEN"):
        return token
    path = STATE / "admin-token"
    if not path.exists():
        STATE.mkdir(parents=True, exist_ok=True)
        path.write_text("spu_" + secrets.token_urlsafe(32) + "\n")
        path.chmod(0o600)
    return path.read_text().strip()


def secrets_key() -> str:
    """SPOOL_SECRETS_KEY if set, else the key in .spool/secrets-key (32 random bytes, base64,
    created once, mode 0600): the gateway encrypts project secrets with it. Losing it loses
    the secrets stored with it."""
    if key := os.environ.get("SPOOL_SECRETS_KEY"):
        return key
    path = STATE / "secrets-key"
    if not path.exists():
        STATE.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(base64.b64encode(secrets.token_bytes(32)).decode() + "\n")
    return path.read_text().strip()


def _pid(name: str) -> int | None:
    path = STATE / "pids" / f"{name}.pid"
    try:
        pid = int(path.read_text())
        os.kill(pid, 0)
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return None
    return pid


def _start(name: str, env: dict[str, str]) -> None:
    (STATE / "logs").mkdir(parents=True, exist_ok=True)
    (STATE / "pids").mkdir(parents=True, exist_ok=True)
    log = (STATE / "logs" / f"{name}.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", MODULES[name]],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=log,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    (STATE / "pids" / f"{name}.pid").write_text(str(proc.pid))
    print(f"started {name} (pid {proc.pid}, log .spool/logs/{name}.log)", file=sys.stderr)


def wait_healthy(timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{gateway_url()}/healthz", timeout=1.0).json().get("ok"):
                return
        except (httpx.HTTPError, ValueError):
            pass
        if _pid("gateway") is None:
            break
        time.sleep(0.2)
    sys.exit(f"error: the gateway did not become healthy; see {STATE}/logs/gateway.log")


def up() -> None:
    env = {**os.environ, "SPOOL_ADMIN_TOKEN": admin_token(), "SPOOL_STATE_DIR": str(STATE)}
    env.pop("SPOOL_SECRETS_KEY", None)
    for name in SERVICES:
        if _pid(name) is None:
            # Only the gateway holds the secrets key.
            _start(name, {**env, "SPOOL_SECRETS_KEY": secrets_key()} if name == "gateway" else env)
    wait_healthy()
    print(f"Spool is running at {gateway_url()} (stop it with: make down)", file=sys.stderr)


def down(grace: float = 30.0) -> None:
    pids = {name: pid for name in SERVICES if (pid := _pid(name)) is not None}
    for pid in pids.values():
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while pids and time.monotonic() < deadline:
        pids = {n: p for n, p in pids.items() if _pid(n) is not None}
        time.sleep(0.1)
    for name, pid in pids.items():
        print(f"{name} did not stop in {grace:.0f} s: killing it", file=sys.stderr)
        os.killpg(pid, signal.SIGKILL)
    for name in SERVICES:
        (STATE / "pids" / f"{name}.pid").unlink(missing_ok=True)
    print("Spool is stopped", file=sys.stderr)


def status() -> None:
    for name in SERVICES:
        pid = _pid(name)
        print(f"{name:15} {'running, pid ' + str(pid) if pid else 'stopped'}")


if __name__ == "__main__":
    commands = {"up": up, "down": down, "status": status}
    if len(sys.argv) != 2 or sys.argv[1] not in commands:
        sys.exit(f"usage: {sys.argv[0]} {{{'|'.join(commands)}}}")
    commands[sys.argv[1]]()
