"""Use cases for services: deploy (an upsert by project and name), update, roll back, pause
and resume, delete, status. Each change is one revision, stored with its `service.*` event."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from spool_common.bus.amqp import Bus
from spool_common.bus.topology import RoutingKey
from spool_common.errors import FieldError, ValidationFailure, raise_if_any
from spool_common.messages import ReplicaRestartRequested, ServiceChange, ServiceChanged, encode
from spool_common.models import ExecutionStatus, Package, Service, StatusEntry, Trigger
from spool_common.replicas import desired_replicas
from spool_gateway.catalog import Catalog
from spool_gateway.deployment_rules import (
    LIVE_STATES,
    ServiceSpec,
    build_service,
    parse_spec,
    patched_spec,
    resolve_revision,
    service_status,
)
from spool_gateway.deployments_store import ReplicaRecord, ServiceRevision, ServiceStore
from spool_gateway.http_errors import ApiError, not_found
from spool_gateway.identity import Role, service_bot_problem
from spool_gateway.identity_store import Bot, IdentityStore
from spool_gateway.lifecycle import entry_json
from spool_gateway.outbox import OutboxRelay, OutboxRow
from spool_gateway.scaling_store import ScalingStore
from spool_gateway.secret_rules import missing_secrets
from spool_gateway.secrets_store import SecretStore
from spool_gateway.triggers_store import TriggerChange, changed_row

DEFAULT_BOT = "default-bot"


def _conflict(service_id: str) -> ApiError:
    return ApiError(
        409,
        "conflict",
        f"service '{service_id}' changed meanwhile; retry",
        (FieldError("serviceId", "updated concurrently"),),
    )


@dataclass
class Deployments:
    catalog: Catalog
    services: ServiceStore
    bus: Bus
    relay: OutboxRelay
    clock: Callable[[], datetime]

    def announce(
        self, change: ServiceChange, service: Service, revision: int, force: bool = False
    ) -> OutboxRow:
        """The outbox row of a `service.<change>` event. `force`: the scheduler replaces or
        stops the replicas at once instead of draining them."""
        event = ServiceChanged(change=change, service=service, revision=revision, force=force)
        return OutboxRow(self.bus.topology.events, f"service.{change}", encode(event))

    def announce_trigger(self, trigger: Trigger, revision: int, change: TriggerChange) -> OutboxRow:
        """The outbox row of a `trigger.<change>` event."""
        return changed_row(self.bus.topology.events, trigger, revision, change)

    async def _package_at(self, spec: ServiceSpec) -> tuple[Package, str]:
        package = await self.catalog.package(spec.package_id)
        if package is None or package.project_id != spec.project_id:
            raise not_found("package", "packageId", spec.package_id)
        versions = [p.version for p in await self.catalog.package_revisions(package.id)]
        revision = resolve_revision(spec.package_revision, package, versions)
        pinned = await self.catalog.package(package.id, revision)
        assert pinned is not None
        return pinned, revision

    async def _check_secrets(self, spec: ServiceSpec) -> None:
        """Every name in `secrets` is a secret of the service's project (400 `secrets[i]`).
        A secret deleted between this check and the write fails the replica's bootstrap."""
        if spec.secrets:
            names = await SecretStore(self.catalog.pool).names(spec.project_id)
            raise_if_any(missing_secrets(spec.secrets, names))

    async def _with_bot(self, spec: ServiceSpec, who: str) -> ServiceSpec:
        """The spec with the bot the service runs as (its user code holds the bot's token):
        `botId` if sent, otherwise the project's first bot that fits, created (a Developer
        named `default-bot`) if the project has none. The bot must be a Developer or Owner of
        the project, and no stronger anywhere than the deployer is here, so that no one gains
        a role through a service's code (400 `botId`). Its executions fail if the bot stops
        being a Developer (bot_ops.py)."""
        identity = IdentityStore(self.catalog.pool)
        # The routes let only members with the Developer role through, and the admin, who is a
        # member of nothing and may use any bot.
        limit = await identity.role(spec.project_id, who) or Role.OWNER
        if spec.bot_id is None:
            return spec.model_copy(update={"bot_id": await self._default_bot(spec, who, limit)})
        if await identity.member_kind(spec.bot_id) != "bot":
            raise ValidationFailure(FieldError("botId", f"no bot '{spec.bot_id}'"))
        roles = await identity.roles_of(spec.bot_id)
        problem = service_bot_problem(spec.project_id, roles, limit)
        if problem is not None:
            raise ValidationFailure(FieldError("botId", problem))
        return spec

    async def _default_bot(self, spec: ServiceSpec, who: str, limit: Role) -> str:
        found = await self._fitting_bot(spec.project_id, limit)
        if found is None:
            bot = Bot(
                id=uuid.uuid4().hex,
                project_id=spec.project_id,
                name=DEFAULT_BOT,
                created_by=who,
                created_at=self.clock(),
            )
            # False when the name is taken (a concurrent deploy made it, or a default bot
            # that no longer fits): the next look decides.
            await IdentityStore(self.catalog.pool).create_bot(bot, Role.DEVELOPER)
            found = await self._fitting_bot(spec.project_id, limit)
        if found is None:
            raise ValidationFailure(
                FieldError("botId", "the project has no bot this service may run as; give botId")
            )
        return found

    async def _fitting_bot(self, project_id: str, limit: Role) -> str | None:
        """The project's first bot a deployer with `limit` may run a service as."""
        identity = IdentityStore(self.catalog.pool)
        for bot in await identity.bots(project_id):
            roles = await identity.roles_of(bot.id)
            if service_bot_problem(project_id, roles, limit) is None:
                return bot.id
        return None

    async def deploy(self, body: dict[str, Any], who: str) -> tuple[Service, bool]:
        """Create the service, or update the one with the same project and name."""
        spec = parse_spec(body)
        if await self.catalog.project(spec.project_id) is None:
            raise not_found("project", "projectId", spec.project_id)
        existing = await self.services.find([spec.project_id], spec.name)
        if existing:
            return await self.update(existing[0].id, body, who), False
        package, revision = await self._package_at(spec)
        await self._check_secrets(spec)
        spec = await self._with_bot(spec, who)
        service = build_service(
            spec,
            package,
            revision,
            service_id=uuid.uuid4().hex,
            who=who,
            now=self.clock(),
            previous=None,
        )
        await self.bus.declare_queue(self.bus.topology.service_queue(service.id))
        row = self.announce(ServiceChange.CREATED, service, 1)
        self.relay.hand_over([row], await self.services.create(service, row))
        return service, True

    async def get(self, service_id: str) -> tuple[Service, int]:
        found = await self.services.get(service_id)
        if found is None:
            raise not_found("service", "serviceId", service_id)
        return found

    async def update(
        self, service_id: str, patch: dict[str, Any], who: str, force: bool = False
    ) -> Service:
        current, revision = await self.get(service_id)
        spec = patched_spec(current, patch)
        return await self._store(current, revision, spec, who, force)

    async def _store(
        self, current: Service, revision: int, spec: ServiceSpec, who: str, force: bool
    ) -> Service:
        package, pinned = await self._package_at(spec)
        await self._check_secrets(spec)
        spec = await self._with_bot(spec, who)
        service = build_service(
            spec,
            package,
            pinned,
            service_id=current.id,
            who=who,
            now=self.clock(),
            previous=current,
        )
        row = self.announce(ServiceChange.UPDATED, service, revision + 1, force)
        ids = await self.services.update(service, revision, row)
        if ids is None:
            raise _conflict(current.id)
        self.relay.hand_over([row], ids)
        return service

    async def rollback(
        self, service_id: str, to_revision: int, who: str, force: bool = False
    ) -> Service:
        """A new revision whose spec is that of `to_revision` (history is never rewritten)."""
        current, revision = await self.get(service_id)
        old = next(
            (r for r in await self.services.revisions(service_id) if r.revision == to_revision),
            None,
        )
        if old is None:
            raise ValidationFailure(
                FieldError(
                    "revision", f"service has no revision {to_revision} (revisions 1 to {revision})"
                )
            )
        spec = parse_spec(old.service.to_wire())
        return await self._store(current, revision, spec, who, force)

    async def set_active(
        self, service_id: str, active: bool, who: str, force: bool = False
    ) -> Service:
        """Pause or resume. Resuming also clears the `crashloop` of a deactivated service."""
        return await self.update(service_id, {"active": active}, who, force)

    async def revisions(self, service_id: str) -> list[ServiceRevision]:
        await self.get(service_id)
        return await self.services.revisions(service_id)

    async def delete(self, service_id: str, force: bool = False) -> None:
        service, revision = await self.get(service_id)
        cancel = StatusEntry(
            status=ExecutionStatus.CANCELED,
            timestamp=self.clock(),
            message="Execution canceled: its service was deleted",
        )
        row = self.announce(ServiceChange.DELETED, service, revision + 1, force)
        deleted = await self.services.delete(
            service_id, row, entry_json(cancel), self.announce_trigger
        )
        if deleted is None:
            raise not_found("service", "serviceId", service_id)
        self.relay.hand_over(*deleted)

    async def restart_replica(self, service_id: str, replica_id: str, who: str) -> None:
        """Ask the scheduler to drain one live replica and start another in its place (the
        request goes out through the outbox: accepted means it will be delivered). 404 when
        it is not a live replica of the service, 409 when it is already draining."""
        record = next(
            (r for r in await self.services.replicas(service_id) if r.replica_id == replica_id),
            None,
        )
        if record is None or record.state not in LIVE_STATES:
            raise not_found("replica", "replicaId", replica_id)
        if record.state == "draining":
            raise ApiError(
                409,
                "conflict",
                f"replica '{replica_id}' is already draining",
                (FieldError("replicaId", "draining: a new replica is taking its place"),),
            )
        event = ReplicaRestartRequested(
            service_id=service_id, replica_id=replica_id, requested_by=who, at=self.clock()
        )
        row = OutboxRow(self.bus.topology.events, RoutingKey.SERVICE_REPLICA_RESTART, encode(event))
        await self.relay.enqueue([row])

    async def status(self, service_id: str) -> dict[str, Any]:
        service, revision = await self.get(service_id)
        return (await self._statuses([(service, revision)]))[0]

    async def statuses(self, projects: list[str] | None) -> list[dict[str, Any]]:
        """The status of every live service of `projects` (None: all), each with its
        `serviceId`, in three queries whatever their number."""
        return await self._statuses(await self.services.find_revisions(projects))

    async def _statuses(self, services: list[tuple[Service, int]]) -> list[dict[str, Any]]:
        ids = [service.id for service, _ in services]
        replicas = await self.services.replicas_of(ids)
        # With an autoscaler, its latest decision (within its bounds), as the scheduler does.
        scaling = ScalingStore(self.catalog.pool)
        autoscaled = [s.id for s, _ in services if s.runtime.autoscaler is not None]
        decided = await scaling.latest_replicas(autoscaled) if autoscaled else {}
        now = self.clock()
        return [
            status_body(s, revision, replicas.get(s.id, []), decided.get(s.id), now)
            for s, revision in services
        ]


def status_body(
    service: Service,
    revision: int,
    records: list[ReplicaRecord],
    scaled: int | None,
    now: datetime,
) -> dict[str, Any]:
    """`GET /services/{id}/status`: the service's status from the replicas heard of (newest
    first) and the autoscaler's latest decision."""
    desired = desired_replicas(service, False, scaled) or 0
    status = service_status(
        service.active, desired, [(r.state, r.reason or "", r.updated_at) for r in records], now
    )
    return {
        "serviceId": service.id,
        "status": status,
        "revision": revision,
        "desiredReplicas": desired,
        "runtimeStatus": [
            {
                "replicaId": r.replica_id,
                "revision": r.revision,
                "state": r.state,
                "reason": r.reason,
                "updatedAt": r.updated_at.isoformat(),
            }
            for r in records
            if r.state in LIVE_STATES
        ],
    }
