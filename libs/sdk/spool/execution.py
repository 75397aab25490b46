"""Executions: one call of a service's function, its status history, output and logs.

`execution.wait()` uses the gateway's long-poll (`GET /executions/{id}/wait`), which answers
the moment the execution ends, so waiting costs one request a minute rather than a poll loop.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from spool.client import DEFAULT_TIMEOUT, Bound, Client
from spool.entity import Entity
from spool.errors import required
from spool.logs import DONE_LINE, PAGE_SIZE, POLL_SECONDS, LogLine, Step, next_step
from spool_common import models

MAX_POLL_SECONDS = 60.0  # one long-poll request (the gateway allows up to 300)
ExecutionInput = Mapping[str, Any] | models.FunctionIO | Sequence[models.FunctionIO]


def poll_seconds(remaining: float | None, longest: float = MAX_POLL_SECONDS) -> float | None:
    """Pure: how long the next long-poll may wait; None when the caller's time is up."""
    if remaining is None:
        return longest
    if remaining <= 0:
        return None
    return min(longest, remaining)


def input_json(execution_input: ExecutionInput | None) -> dict[str, Any]:
    """Pure: `{name: value}` from a mapping, a `FunctionIO` or a list of them (dtlpy's forms)."""
    if execution_input is None:
        return {}
    if isinstance(execution_input, models.FunctionIO):
        return {execution_input.name: execution_input.value}
    if isinstance(execution_input, Mapping):
        return dict(execution_input)
    return {io.name: io.value for io in execution_input}


def resource_input(
    item_id: str | None, dataset_id: str | None, annotation_id: str | None
) -> dict[str, Any]:
    """Pure: dtlpy's resource shortcut: the most specific entity given, under its own key."""
    ids = {"dataset_id": dataset_id, "item_id": item_id, "annotation_id": annotation_id}
    given = {k: v for k, v in ids.items() if v is not None}
    for key in ("annotation", "item", "dataset"):
        if f"{key}_id" in given:
            return {key: given}
    return {}


class Execution(models.Execution, Entity):
    @property
    def status(self) -> models.ExecutionStatus:
        """The latest status: created, in-progress, success, failed, ..."""
        return self.latest_status.status

    @property
    def progress(self) -> int | None:
        """The last percentComplete the function reported (None if it never did)."""
        for entry in reversed(self.status_log or [self.latest_status]):
            if entry.percent_complete is not None:
                return entry.percent_complete
        return None

    @property
    def error(self) -> models.ExecutionError | None:
        """Why it failed (type, message, traceback), from the latest status."""
        return self.latest_status.error

    def in_progress(self) -> bool:
        """dtlpy's name for "not finished yet"."""
        return not self.status.is_terminal

    def wait(self, timeout: float | None = None) -> Execution:
        """Block until the execution ends (forever if `timeout` is None); updates this
        object and returns it. Raises TimeoutError after `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.status.is_terminal:
            remaining = None if deadline is None else deadline - time.monotonic()
            seconds = poll_seconds(remaining)
            if seconds is None:
                raise TimeoutError(
                    f"execution {self.id} did not finish within {timeout} s "
                    f"(it is {self.status.value})"
                )
            self._long_poll(seconds)
        return self

    def _long_poll(self, seconds: float) -> None:
        data = self.client.request(
            "GET",
            f"/executions/{self.id}/wait",
            params={"timeout": round(seconds, 3) or 0.001},
            timeout=seconds + DEFAULT_TIMEOUT,
        )
        self._refresh(data)

    def logs(self, follow: bool = False) -> Iterator[LogLine]:
        """What the function printed, every attempt, in order, ending with the agent's
        `[Done] Executing function.` line. `follow`: keep reading until the execution has
        ended and its last line is read."""
        after, last = 0, ""
        ended_at = time.monotonic() if self.status.is_terminal else None
        while True:
            page = self.client.get(f"/executions/{self.id}/logs", after=after, size=PAGE_SIZE)
            after, lines = int(page["checkpoint"]["after"]), page["logs"]
            yield from (LogLine.from_json(line) for line in lines)
            now = time.monotonic()
            if lines:
                last = str(lines[-1].get("message"))
                ended_at = now if ended_at is not None else None
            quiet = 0.0 if ended_at is None else now - ended_at
            done = last == DONE_LINE
            step = next_step(len(lines), PAGE_SIZE, follow, ended_at is not None, done, quiet)
            if step is Step.STOP:
                return
            if step is Step.WAIT:
                ended_at = self._wait_for_lines(ended_at)

    def _wait_for_lines(self, ended_at: float | None) -> float | None:
        """Before the end: long-poll (it answers early when the execution ends). After it:
        a short pause. Returns when the end was first seen."""
        if ended_at is not None:
            time.sleep(POLL_SECONDS / 4)
            return ended_at
        self._long_poll(POLL_SECONDS)
        return time.monotonic() if self.status.is_terminal else None

    def terminate(self) -> Execution:
        """Stop it: a queued execution never starts, a running one is interrupted."""
        return self._refresh(self.client.post(f"/executions/{self.id}/terminate"))

    def rerun(self) -> Execution:
        """Run a finished execution again: same id, the service's current revision."""
        return self._refresh(self.client.post(f"/executions/{self.id}/rerun"))

    def __repr__(self) -> str:
        return (
            f"Execution(id={self.id!r}, function_name={self.function_name!r}, "
            f"status={self.status.value!r})"
        )

    __str__ = __repr__


class Executions(Bound):
    """Executions of every service, or of one (`service.executions`)."""

    def __init__(self, client: Client | None = None, service_id: str | None = None) -> None:
        super().__init__(client)
        self._service_id = service_id

    def _service(self, service_id: str | None) -> str:
        chosen = service_id or self._service_id
        if chosen is None:
            raise required("service_id=", "serviceId")
        return chosen

    def create(
        self,
        service_id: str | None = None,
        execution_input: ExecutionInput | None = None,
        function_name: str = models.DEFAULT_FUNCTION_NAME,
        *,
        item_id: str | None = None,
        dataset_id: str | None = None,
        annotation_id: str | None = None,
        sync: bool = False,
        timeout: float | None = None,
    ) -> Execution:
        """Run `function_name` with `execution_input`; `sync`: wait for it to end."""
        body = {
            "functionName": function_name,
            "input": {
                **resource_input(item_id, dataset_id, annotation_id),
                **input_json(execution_input),
            },
        }
        path = f"/executions/{self._service(service_id)}"
        execution = Execution.from_json(self.client, self.client.post(path, body))
        return execution.wait(timeout) if sync else execution

    def get(self, execution_id: str) -> Execution:
        return Execution.from_json(self.client, self.client.get(f"/executions/{execution_id}"))

    def list(
        self,
        service_id: str | None = None,
        project_id: str | None = None,
        status: models.ExecutionStatus | str | None = None,
        resource_id: str | None = None,
        error_type: str | None = None,
        trigger_id: str | None = None,
        function_name: str | None = None,
        created_from: datetime | None = None,
        created_to: datetime | None = None,
        limit: int = 100,
    ) -> builtins.list[Execution]:
        """Newest first, at most `limit` (up to 1000), filtered by every argument given;
        `created_from` and `created_to` bound the creation time, [from, to)."""
        found = self.client.get(
            "/executions",
            serviceId=service_id or self._service_id,
            projectId=project_id,
            status=status,
            resourceId=resource_id,
            errorType=error_type,
            triggerId=trigger_id,
            functionName=function_name,
            **{
                "from": created_from.isoformat() if created_from else None,
                "to": created_to.isoformat() if created_to else None,
            },
            limit=limit,
        )
        return [Execution.from_json(self.client, e) for e in found]
