"""HTTP routes for project secrets, and their delivery to an agent's bootstrap.

Secrets are write-only: the API answers names, key ids and timestamps, never a value; no
error repeats one. The only way out of a value is `values_for`, called by the agent
bootstrap (an agent's token, its own service only). Project members read the names
(Viewer); Developers and Owners create, replace and delete them.
"""

from __future__ import annotations

import functools
import os

from fastapi import APIRouter, Response
from pydantic import SecretStr

from spool_common.errors import FieldError, raise_if_any
from spool_common.models import Service, WireModel
from spool_gateway.access import authorize
from spool_gateway.api import GatewayDep, PrincipalDep
from spool_gateway.core import Gateway
from spool_gateway.http_errors import ApiError, not_found
from spool_gateway.identity import Role
from spool_gateway.secret_rules import missing_secrets, name_errors, value_errors
from spool_gateway.secrets_crypto import (
    NONCE_BYTES,
    Keyring,
    SecretsKeyError,
    UnsealError,
    keyring_from,
    seal,
    unseal,
)
from spool_gateway.secrets_store import Sealed, SecretRecord, SecretStore

router = APIRouter(tags=["secrets"])


class SecretCreate(WireModel):
    name: str
    value: str


class SecretReplace(WireModel):
    value: str


@functools.cache
def _keyring(current: str | None, previous: str | None) -> Keyring | None:
    return keyring_from(current, previous)


def keyring_of(gw: Gateway) -> Keyring:
    """The configured keyring; 503 naming the setting if there is none or it is unusable."""
    settings = gw.settings
    plain = [
        s.get_secret_value() if isinstance(s, SecretStr) else None
        for s in (settings.secrets_key, settings.secrets_keys)
    ]
    try:
        keyring = _keyring(plain[0], plain[1])
    except SecretsKeyError as e:
        raise ApiError(503, "secrets_unavailable", f"secrets are unavailable: {e}") from None
    if keyring is None:
        raise ApiError(
            503,
            "secrets_unavailable",
            "secrets are unavailable: the gateway has no SPOOL_SECRETS_KEY "
            "(base64 of 32 random bytes)",
        )
    return keyring


def _store(gw: Gateway) -> SecretStore:
    return SecretStore(gw.ledger.pool)


def _sealed(gw: Gateway, project_id: str, name: str, value: str) -> Sealed:
    keyring = keyring_of(gw)
    ciphertext = seal(keyring, project_id, name, value, os.urandom(NONCE_BYTES))
    return Sealed(keyring.current, ciphertext)


def _missing(name: str) -> ApiError:
    return not_found("secret", "name", name)


@router.post("/projects/{project_id}/secrets", status_code=201)
async def create_secret(
    project_id: str, body: SecretCreate, gw: GatewayDep, who: PrincipalDep
) -> SecretRecord:
    """Store a secret (sealed; its value is never shown again)."""
    await authorize(gw, who, project_id, Role.DEVELOPER)
    raise_if_any([*name_errors(body.name), *value_errors(body.value)])
    sealed = _sealed(gw, project_id, body.name, body.value)
    record = await _store(gw).create(project_id, body.name, sealed, who.subject, gw.clock())
    if record is None:
        raise ApiError(
            409,
            "conflict",
            f"the project has a secret named '{body.name}'; PUT replaces its value",
            (FieldError("name", "already taken"),),
        )
    return record


@router.get("/projects/{project_id}/secrets")
async def list_secrets(project_id: str, gw: GatewayDep, who: PrincipalDep) -> list[SecretRecord]:
    """The project's secrets: names, key ids and timestamps, never values."""
    await authorize(gw, who, project_id, Role.VIEWER)
    return await _store(gw).in_project(project_id)


@router.get("/projects/{project_id}/secrets/{name}")
async def get_secret(project_id: str, name: str, gw: GatewayDep, who: PrincipalDep) -> SecretRecord:
    """One secret's metadata (never its value)."""
    await authorize(gw, who, project_id, Role.VIEWER)
    record = await _store(gw).get(project_id, name)
    if record is None:
        raise _missing(name)
    return record


@router.put("/projects/{project_id}/secrets/{name}")
async def replace_secret(
    project_id: str, name: str, body: SecretReplace, gw: GatewayDep, who: PrincipalDep
) -> SecretRecord:
    """Replace the value (sealed under the current key). Replicas started after this see
    the new value; running ones keep the one they started with."""
    await authorize(gw, who, project_id, Role.DEVELOPER)
    raise_if_any(value_errors(body.value))
    sealed = _sealed(gw, project_id, name, body.value)
    record = await _store(gw).replace(project_id, name, sealed, who.subject, gw.clock())
    if record is None:
        raise _missing(name)
    return record


@router.delete("/projects/{project_id}/secrets/{name}", status_code=204)
async def delete_secret(project_id: str, name: str, gw: GatewayDep, who: PrincipalDep) -> Response:
    """Delete a secret. 409, naming them, while live services still list it in `secrets`."""
    await authorize(gw, who, project_id, Role.DEVELOPER)
    deleted, users = await _store(gw).delete(project_id, name)
    if users:
        raise ApiError(
            409,
            "conflict",
            f"secret '{name}' is used by services {', '.join(users)}; "
            "remove it from their `secrets` first",
            (FieldError("name", "in use"),),
        )
    if not deleted:
        raise _missing(name)
    return Response(status_code=204)


async def values_for(gw: Gateway, service: Service) -> dict[str, str]:
    """The opened values of the service's secrets, for its agent's bootstrap only."""
    if not service.secrets:
        return {}
    keyring = keyring_of(gw)
    sealed = await _store(gw).sealed(service.project_id, service.secrets)
    missing = missing_secrets(service.secrets, sealed.keys())
    if missing:
        raise ApiError(409, "conflict", "a secret of the service no longer exists", tuple(missing))
    try:
        return {
            name: unseal(keyring, service.project_id, name, s.ciphertext)
            for name, s in sealed.items()
        }
    except UnsealError as e:
        raise ApiError(503, "secrets_unavailable", str(e)) from None
