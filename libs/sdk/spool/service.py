"""Services: a deployed package revision with its runtime. Change fields in place, then
`service.update()`; run functions with `service.execute(...)`; pause, resume, roll back.

MLRun's modifiers (`set_env`, `with_requests`, `with_limits`, ...) change `service.runtime`
and return the service, so they chain and take effect on `update()`:
`service.with_limits(mem="2G").set_env("MODE", "fast").update()`.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, overload

from pydantic import Field

from spool.client import Bound, Client
from spool.entity import Entity
from spool.errors import ExecutionFailed
from spool.execution import Execution, ExecutionInput, Executions
from spool.logs import POLL_SECONDS, LogLine
from spool.notification import Notification, find_notifications
from spool.project import need_one, only_one
from spool.runtime import KubernetesRuntime, PreemptionMode
from spool.trigger import Triggers
from spool_common import models
from spool_common.messages import NotificationType
from spool_common.models import WireModel

LOG_PAGE_SIZE = 100


class ReplicaStatus(WireModel):
    replica_id: str
    state: str  # starting, ready, draining
    reason: str | None = None
    updated_at: datetime | None = None


class ServiceStatus(WireModel):
    """`GET /services/{id}/status`: Active, Inactive, Initializing or Error, and the replicas."""

    service_id: str | None = None
    status: str
    revision: int
    desired_replicas: int
    runtime_status: list[ReplicaStatus] = Field(default_factory=list)


class ScalingDecision(WireModel):
    """One autoscaler decision: from how many replicas to how many, by which rule, and why."""

    at: datetime
    from_: int | None = Field(default=None, alias="from")
    to: int
    rule: str  # queue, rps, latency, bounds, hold
    reason: str
    inputs: dict[str, float] = Field(default_factory=dict)


class ServiceLoad(WireModel):
    """`GET /services/load`: queue depth and in-flight now, and over the last `window` seconds
    the executions created and finished, finished per minute and their p50 / p75 latency
    (create -> finish seconds; None when none finished)."""

    service_id: str
    queued: int
    in_flight: int
    created: int
    finished: int
    executions_per_minute: float
    latency_p50: float | None = None
    latency_p75: float | None = None
    window: int
    at: datetime


class ServiceRevision(WireModel):
    revision: int
    creator: str | None = None
    created_at: datetime | None = None
    service: models.Service


class Service(models.Service, Entity):
    runtime: KubernetesRuntime = Field(default_factory=KubernetesRuntime)

    @classmethod
    def _merged(cls, path: str) -> bool:
        """The gateway merges `runtime` key by key; every other field is replaced whole."""
        return path == "runtime" or path.startswith("runtime.")

    @property
    def triggers(self) -> Triggers:
        return Triggers(self.client, service=self)

    @property
    def executions(self) -> Executions:
        return Executions(self.client, service_id=self.id)

    @property
    def revisions(self) -> builtins.list[ServiceRevision]:
        """Every change to the service, oldest first; `rollback(n)` deploys revision n again."""
        found = self.client.get(f"/services/{self.id}/revisions")
        return [ServiceRevision.model_validate(r) for r in found]

    def update(self, force: bool = False) -> Service:
        """Send the fields changed since the server's last answer (one new revision). `force`:
        replace the replicas at once instead of draining them."""
        changes = self.changes()
        if not changes:
            return self._refresh(self.client.get(f"/services/{self.id}"))
        path = f"/services/{self.id}"
        return self._refresh(self.client.patch(path, changes, force=force))

    def pause(self, force: bool = False) -> Service:
        """Stop the replicas; executions are still accepted, and run on `resume()`."""
        return self._refresh(self.client.post(f"/services/{self.id}/stop", force=force))

    def resume(self, force: bool = False) -> Service:
        return self._refresh(self.client.post(f"/services/{self.id}/resume", force=force))

    def rollback(self, revision: int, force: bool = False) -> Service:
        """Deploy what revision `revision` ran, as a new revision."""
        path = f"/services/{self.id}/rollback"
        return self._refresh(self.client.post(path, {"revision": revision}, force=force))

    def delete(self, force: bool = False) -> None:
        """Stop the replicas, cancel unfinished executions, remove the triggers."""
        self.client.delete(f"/services/{self.id}", force=force)

    def status(self) -> ServiceStatus:
        return ServiceStatus.model_validate(self.client.get(f"/services/{self.id}/status"))

    def load(self, window: int = 60) -> ServiceLoad:
        """Queue depth, in-flight, executions per minute and p50 / p75 latency over the last
        `window` seconds (5 to 3600)."""
        (found,) = self.client.get("/services/load", serviceId=self.id, window=window)
        return ServiceLoad.model_validate(found)

    def restart_replica(self, replica_id: str) -> None:
        """Drain one replica (a `replica_id` of `status().runtime_status`) while another
        starts in its place; its running executions finish within drainTime."""
        self.client.post(f"/services/{self.id}/replicas/{replica_id}/restart")

    def notifications(
        self, type: NotificationType | str | None = None, limit: int = 100, offset: int = 0
    ) -> builtins.list[Notification]:
        """What went wrong with the replicas (InitError, crash loops...), newest first."""
        path = f"/services/{self.id}/notifications"
        return find_notifications(self.client, path, type, limit, offset)

    def scaling(
        self, since: datetime | None = None, limit: int = 100
    ) -> builtins.list[ScalingDecision]:
        """The autoscaler's decisions, newest first."""
        found = self.client.get(
            f"/services/{self.id}/scaling",
            since=since.isoformat() if since else None,
            limit=limit,
        )
        return [ScalingDecision.model_validate(d) for d in found]

    def logs(
        self,
        follow: bool = False,
        text: str | None = None,
        execution_id: str | None = None,
        start: datetime | None = None,
        tail: int | None = None,
    ) -> Iterator[LogLine]:
        """The service's log lines in order (dtlpy's `POST /services/logs` paging). `follow`:
        keep waiting for new lines until the caller stops iterating. `tail`: begin with the
        newest `tail` lines (at most 1000) instead of the oldest."""
        body: dict[str, Any] = {"serviceId": self.id, "follow": follow, "size": LOG_PAGE_SIZE}
        body |= {"text": text, "start": start.isoformat() if start else None, "tail": tail}
        body |= {"executionId": [execution_id] if execution_id else None}
        body = {k: v for k, v in body.items() if v is not None}
        while True:
            page = self.client.post("/services/logs", body)
            yield from (LogLine.from_json(line) for line in page["logs"])
            if page.get("stop"):
                return
            body.pop("tail", None)  # the first page only
            body["checkpoint"] = page["checkpoint"]
            if len(page["logs"]) < LOG_PAGE_SIZE:
                time.sleep(POLL_SECONDS)

    @overload
    def execute(
        self,
        execution_input: ExecutionInput | None = ...,
        function_name: str = ...,
        *,
        item_id: str | None = ...,
        dataset_id: str | None = ...,
        annotation_id: str | None = ...,
        sync: Literal[False] = ...,
        return_output: bool = ...,
        timeout: float | None = ...,
    ) -> Execution: ...
    @overload
    def execute(
        self,
        execution_input: ExecutionInput | None = ...,
        function_name: str = ...,
        *,
        item_id: str | None = ...,
        dataset_id: str | None = ...,
        annotation_id: str | None = ...,
        sync: bool,
        return_output: Literal[False],
        timeout: float | None = ...,
    ) -> Execution: ...
    @overload
    def execute(
        self,
        execution_input: ExecutionInput | None = ...,
        function_name: str = ...,
        *,
        item_id: str | None = ...,
        dataset_id: str | None = ...,
        annotation_id: str | None = ...,
        sync: bool,
        return_output: bool = ...,
        timeout: float | None = ...,
    ) -> Any: ...
    def execute(
        self,
        execution_input: ExecutionInput | None = None,
        function_name: str = models.DEFAULT_FUNCTION_NAME,
        *,
        item_id: str | None = None,
        dataset_id: str | None = None,
        annotation_id: str | None = None,
        sync: bool = False,
        return_output: bool = True,
        timeout: float | None = None,
    ) -> Any:
        """Run a function. Returns the Execution at once; with `sync=True` waits for it to
        end (TimeoutError after `timeout`) and returns its output, unless
        `return_output=False`. A sync call whose execution did not succeed raises
        `ExecutionFailed` rather than answering None."""
        execution = self.executions.create(
            execution_input=execution_input,
            function_name=function_name,
            item_id=item_id,
            dataset_id=dataset_id,
            annotation_id=annotation_id,
            sync=sync,
            timeout=timeout,
        )
        if not (sync and return_output):
            return execution
        if execution.status is not models.ExecutionStatus.SUCCESS:
            reason = execution.error.message if execution.error else execution.status.value
            raise ExecutionFailed(f"execution {execution.id} {execution.status.value}: {reason}")
        return execution.output

    # MLRun's modifiers: they change `runtime`; `update()` sends them.
    def set_env(self, name: str, value: str) -> Service:
        self.runtime.set_env(name, value)
        return self

    def set_envs(
        self, env_vars: Mapping[str, str] | None = None, file_path: str | Path | None = None
    ) -> Service:
        self.runtime.set_envs(env_vars, file_path)
        return self

    def with_requests(
        self, mem: str | int | None = None, cpu: str | float | None = None, patch: bool = False
    ) -> Service:
        self.runtime.with_requests(mem, cpu, patch)
        return self

    def with_limits(
        self,
        mem: str | int | None = None,
        cpu: str | float | None = None,
        gpus: int | None = None,
        gpu_type: str = "nvidia.com/gpu",
        patch: bool = False,
    ) -> Service:
        self.runtime.with_limits(mem, cpu, gpus, gpu_type, patch)
        return self

    def with_preemption_mode(self, mode: PreemptionMode | str) -> Service:
        self.runtime.with_preemption_mode(mode)
        return self

    def with_priority_class(self, name: str) -> Service:
        self.runtime.with_priority_class(name)
        return self

    def with_node_selection(self, node_selector: Mapping[str, str] | None = None) -> Service:
        self.runtime.with_node_selection(node_selector)
        return self

    def set_state_thresholds(
        self, state_thresholds: Mapping[str, str], patch: bool = True
    ) -> Service:
        self.runtime.set_state_thresholds(state_thresholds, patch)
        return self


class Services(Bound):
    def __init__(self, client: Client | None = None, project_id: str | None = None) -> None:
        super().__init__(client)
        self._project_id = project_id

    def get(
        self,
        service_id: str | None = None,
        service_name: str | None = None,
        project_id: str | None = None,
    ) -> Service:
        """By id, or by name (in `project_id` if given)."""
        need_one({"service_id": service_id, "service_name": service_name})
        if service_id is not None:
            return Service.from_json(self.client, self.client.get(f"/services/{service_id}"))
        found = self.client.get(
            "/services", name=service_name, projectId=project_id or self._project_id
        )
        return Service.from_json(
            self.client, only_one(found, "service", "serviceName", str(service_name))
        )

    def list(
        self, project_id: str | None = None, name: str | None = None
    ) -> builtins.list[Service]:
        found = self.client.get("/services", projectId=project_id or self._project_id, name=name)
        return [Service.from_json(self.client, s) for s in found]

    def statuses(self, project_id: str | None = None) -> builtins.list[ServiceStatus]:
        """Each service's `status()`, for every service of the project (or every one the
        caller sees) in one request; `service_id` tells them apart."""
        found = self.client.get("/services/status", projectId=project_id or self._project_id)
        return [ServiceStatus.model_validate(s) for s in found]

    def load(self, project_id: str | None = None, window: int = 60) -> builtins.list[ServiceLoad]:
        """Each service's `load(window)`, for every service of the project (or every one the
        caller sees) in one request."""
        found = self.client.get(
            "/services/load", projectId=project_id or self._project_id, window=window
        )
        return [ServiceLoad.model_validate(s) for s in found]
