"""HTTP routes for services: deploy (an upsert by project and name), update, revisions,
rollback, pause (`/stop`) and resume (`/activate`), status and delete. Changes that stop or
replace replicas take `?force=true`. Triggers are in `trigger_routes`."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response

from spool_common.instances import INSTANCES
from spool_common.models import Service, WireModel
from spool_common.quantities import format_memory
from spool_gateway.access import authorize, projects_visible, service_of
from spool_gateway.api import GatewayDep, PrincipalDep
from spool_gateway.deployment_rules import ServiceSpec
from spool_gateway.identity import Role

router = APIRouter(tags=["services"])

Force = Annotated[
    bool,
    Query(
        description="true: the scheduler stops or replaces the service's replicas at once "
        "instead of draining them (running executions are interrupted and settled by the "
        "service's onReset); false (default): replicas drain for up to drainTime",
    ),
]


class Rollback(WireModel):
    revision: int


class RevisionOut(WireModel):
    revision: int
    creator: str | None
    created_at: Any
    service: Service


@router.post("/services", status_code=201, responses={200: {"description": "updated"}})
async def deploy_service(
    body: ServiceSpec, gw: GatewayDep, who: PrincipalDep, response: Response
) -> Service:
    """Deploy: create the service, or update the project's service of the same name (200),
    changing only the fields sent. dtlpy's Service JSON is accepted as it is. Needs the
    Developer role in the project; the service runs as `botId`, by default the project's first
    bot (created if the project has none)."""
    await authorize(gw, who, body.project_id, Role.DEVELOPER)
    fields = body.model_dump(mode="json", by_alias=True, exclude_unset=True)
    service, created = await gw.deployments.deploy(fields, who.subject)
    response.status_code = 201 if created else 200
    return service


@router.get("/services")
async def list_services(
    gw: GatewayDep,
    who: PrincipalDep,
    project_id: Annotated[str | None, Query(alias="projectId")] = None,
    name: str | None = None,
) -> list[Service]:
    """Live services of the projects the caller is a member of."""
    return await gw.services.find(await projects_visible(gw, who, project_id), name)


@router.get("/services/status")
async def services_status(
    gw: GatewayDep,
    who: PrincipalDep,
    project_id: Annotated[str | None, Query(alias="projectId")] = None,
) -> list[dict[str, Any]]:
    """`GET /services/{id}/status` of every live service the caller sees (or of one project),
    each with its `serviceId`: what a console's services table polls, in one request."""
    return await gw.deployments.statuses(await projects_visible(gw, who, project_id))


@router.get("/services/{service_id}")
async def get_service(service_id: str, gw: GatewayDep, who: PrincipalDep) -> Service:
    return (await service_of(gw, who, service_id))[0]


@router.patch("/services/{service_id}")
async def update_service(
    service_id: str, body: dict[str, Any], gw: GatewayDep, who: PrincipalDep, force: Force = False
) -> Service:
    """Update some fields (or send the whole Service JSON); one new revision.
    `?force=true`: replicas of the previous revision are replaced at once, not drained."""
    await service_of(gw, who, service_id, Role.DEVELOPER)
    return await gw.deployments.update(service_id, body, who.subject, force)


@router.get("/services/{service_id}/revisions")
async def service_revisions(
    service_id: str, gw: GatewayDep, who: PrincipalDep
) -> list[RevisionOut]:
    await service_of(gw, who, service_id)
    return [
        RevisionOut(
            revision=r.revision, creator=r.creator, created_at=r.created_at, service=r.service
        )
        for r in await gw.deployments.revisions(service_id)
    ]


@router.post("/services/{service_id}/rollback")
async def rollback_service(
    service_id: str, body: Rollback, gw: GatewayDep, who: PrincipalDep, force: Force = False
) -> Service:
    """Deploy again what revision N ran, as a new revision.
    `?force=true`: replicas of the current revision are replaced at once, not drained."""
    await service_of(gw, who, service_id, Role.DEVELOPER)
    return await gw.deployments.rollback(service_id, body.revision, who.subject, force)


@router.post("/services/{service_id}/stop")
async def pause_service(
    service_id: str, gw: GatewayDep, who: PrincipalDep, force: Force = False
) -> Service:
    """Pause: replicas stop; executions are still accepted and queued, and run on resume.
    `?force=true`: replicas stop at once instead of draining."""
    await service_of(gw, who, service_id, Role.DEVELOPER)
    return await gw.deployments.set_active(service_id, False, who.subject, force)


@router.post("/services/{service_id}/resume")
async def resume_service(
    service_id: str, gw: GatewayDep, who: PrincipalDep, force: Force = False
) -> Service:
    """Resume a paused service, or one the gateway deactivated for a crash loop (this clears
    its `crashloop`): one call. `?force=true`: replicas of the previous revision (e.g. still
    draining after a pause) are replaced at once."""
    await service_of(gw, who, service_id, Role.DEVELOPER)
    return await gw.deployments.set_active(service_id, True, who.subject, force)


@router.post("/services/{service_id}/activate")
async def activate_service(
    service_id: str, gw: GatewayDep, who: PrincipalDep, force: Force = False
) -> Service:
    """The same as `POST /services/{id}/resume`."""
    await service_of(gw, who, service_id, Role.DEVELOPER)
    return await gw.deployments.set_active(service_id, True, who.subject, force)


class ReplicaRestart(WireModel):
    service_id: str
    replica_id: str
    status: Literal["restarting"] = "restarting"


@router.post("/services/{service_id}/replicas/{replica_id}/restart", status_code=202)
async def restart_replica(
    service_id: str, replica_id: str, gw: GatewayDep, who: PrincipalDep
) -> ReplicaRestart:
    """Restart one replica (a `replicaId` of `GET /services/{id}/status`): it drains, its
    running executions finishing within drainTime, while the deployment starts another in its
    place. Not a failure: no notification, no crash-loop count. 404 if it is not a live
    replica of the service, 409 if it is already draining."""
    service = (await service_of(gw, who, service_id, Role.DEVELOPER))[0]
    await gw.deployments.restart_replica(service.id, replica_id, who.subject)
    return ReplicaRestart(service_id=service.id, replica_id=replica_id)


@router.get("/services/{service_id}/status")
async def service_status(service_id: str, gw: GatewayDep, who: PrincipalDep) -> dict[str, Any]:
    """Active / Inactive / Initializing / Error, `desiredReplicas` (the autoscaler's when it
    has one), and one runtimeStatus entry per live replica with the revision it runs."""
    await service_of(gw, who, service_id)
    return await gw.deployments.status(service_id)


@router.delete("/services/{service_id}", status_code=204, response_class=Response)
async def delete_service(
    service_id: str, gw: GatewayDep, who: PrincipalDep, force: Force = False
) -> Response:
    """Delete: replicas stop, unfinished executions are canceled, its triggers removed.
    `?force=true`: replicas stop at once instead of draining."""
    await service_of(gw, who, service_id, Role.DEVELOPER)
    await gw.deployments.delete(service_id, force)
    return Response(status_code=204)


@router.get("/instance-types")
async def instance_types(who: PrincipalDep) -> list[dict[str, Any]]:
    """The podType catalog: CPU, memory and GPUs of each instance type."""
    return [
        {
            "name": spec.name,
            "cpu": spec.cpu,
            "memory": format_memory(spec.memory_bytes),
            "memoryBytes": spec.memory_bytes,
            "gpus": spec.gpus,
            "gpuType": spec.gpu_type,
        }
        for spec in INSTANCES.values()
    ]
