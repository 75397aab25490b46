"""HTTP adapter to the gateway: what an agent fetches at start, with its scoped credential."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from spool_common.models import Package, Service


class BootstrapError(Exception):
    """The gateway refused or could not answer; the replica cannot start."""


@dataclass(frozen=True)
class Bootstrap:
    service: Service
    package: Package
    revision: int
    codebase: bytes


async def fetch_bootstrap(base_url: str, token: str, *, timeout: float = 30.0) -> Bootstrap:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=timeout) as client:
        try:
            spec = await client.get("/api/v1/agent/bootstrap")
            spec.raise_for_status()
            body = spec.json()
            package = Package.model_validate(body["package"])
            code = await client.get(
                f"/api/v1/packages/{package.id}/codebase", params={"version": package.version}
            )
            code.raise_for_status()
        except httpx.HTTPError as e:
            raise BootstrapError(f"cannot fetch the service from the gateway: {e}") from e
    return Bootstrap(
        service=Service.model_validate(body["service"]),
        package=package,
        revision=int(body["revision"]),
        codebase=code.content,
    )
