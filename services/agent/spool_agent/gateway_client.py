"""HTTP adapter to the gateway: what an agent fetches at start, with its scoped credential."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx

from spool_common.models import Package, Service


class BootstrapError(Exception):
    """The gateway refused or could not answer; the replica cannot start."""


class BootstrapRefused(BootstrapError):
    """The gateway refused the replica's credential (401/403) or no longer knows its service."""


_REFUSED = (401, 403, 404)


@dataclass(frozen=True)
class Bootstrap:
    service: Service
    package: Package
    revision: int
    codebase: bytes
    # The service's secrets, opened: they go to the user code's environment and nowhere else
    # (not in its repr either, so no log line or error showing a Bootstrap carries them).
    secrets: dict[str, str] = field(default_factory=dict, repr=False)
    # A token of the service's bot: user code calls the API with it, as that bot.
    bot_token: str | None = field(default=None, repr=False)


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
        except httpx.HTTPStatusError as e:
            if e.response.status_code in _REFUSED:
                raise BootstrapRefused(f"the gateway refused this replica: {e}") from e
            raise BootstrapError(f"cannot fetch the service from the gateway: {e}") from e
        except httpx.HTTPError as e:
            raise BootstrapError(f"cannot fetch the service from the gateway: {e}") from e
    return Bootstrap(
        service=Service.model_validate(body["service"]),
        package=package,
        revision=int(body["revision"]),
        codebase=code.content,
        secrets=_secrets(body.get("secrets")),
        bot_token=_bot_token(body.get("botToken")),
    )


def _bot_token(value: object) -> str | None:
    if value is not None and not isinstance(value, str):
        raise BootstrapError("the gateway sent a malformed bot token")
    return value


def _secrets(value: object) -> dict[str, str]:
    """The bootstrap's `secrets` (absent from older gateways). A malformed one is refused
    without repeating it."""
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise BootstrapError("the gateway sent malformed secrets")
    return dict(value)
