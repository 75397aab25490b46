"""The demo: push examples/hello, deploy it, run `run(name="world")`, print the execution.

Idempotent: a second run reuses the project, package and service it finds by name. The last
line of output is the final execution JSON.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import httpx
import orjson

from spool_common.archive import build_archive

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from platform_ctl import admin_token, gateway_url  # noqa: E402  (after the path set-up above)


def _check(response: httpx.Response) -> Any:
    if response.is_error:
        sys.exit(
            f"error: {response.request.method} {response.request.url.path} answered "
            f"{response.status_code}: {response.text}"
        )
    return response.json()


def _one(client: httpx.Client, path: str, **params: str) -> dict[str, Any] | None:
    found = _check(client.get(path, params=params))
    return found[0] if found else None


def zip_directory(path: Path) -> bytes:
    files = {
        p.relative_to(path).as_posix(): p.read_bytes()
        for p in sorted(path.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }
    return build_archive(files)


def deploy(client: httpx.Client, source: Path, name: str) -> dict[str, Any]:
    project = _one(client, "/projects", name="demo")
    if project is None:
        project = _check(client.post("/projects", json={"name": "demo"}))
    package = _one(client, "/packages", projectId=project["id"], name=name)
    if package is None:
        files = {"codebase": ("codebase.zip", zip_directory(source), "application/zip")}
        package = _check(client.post("/packages", files=files, data={"projectId": project["id"]}))
        print(f"pushed package {name} {package['version']}", file=sys.stderr)
    service = _one(client, "/services", projectId=project["id"], name=name)
    if service is None:
        body = {
            "name": name,
            "projectId": project["id"],
            "packageId": package["id"],
            "runtime": {"numReplicas": 1, "concurrency": 10},
        }
        service = _check(client.post("/services", json=body))
        print(f"deployed service {name}", file=sys.stderr)
    return service


def main() -> None:
    headers = {"Authorization": f"Bearer {admin_token()}"}
    with httpx.Client(base_url=f"{gateway_url()}/api/v1", headers=headers, timeout=90) as client:
        service = deploy(client, ROOT / "examples" / "hello", "hello")
        body = {"functionName": "run", "input": {"name": "world"}}
        execution = _check(client.post(f"/executions/{service['id']}", json=body))
        print(f"created execution {execution['id']}; waiting for it", file=sys.stderr)
        execution = _check(
            client.get(f"/executions/{execution['id']}/wait", params={"timeout": 60})
        )
    print(
        f"dashboard: {gateway_url()}/dashboard/ (sign in with the token in .spool/admin-token)",
        file=sys.stderr,
    )
    print(orjson.dumps(execution).decode())
    if execution["latestStatus"]["status"] != "success":
        sys.exit(1)


if __name__ == "__main__":
    main()
