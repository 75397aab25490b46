"""What the `spool` command prints for people: tables, ages, durations, one-line summaries.
Pure: values (and `now`) in, text out; nothing here writes or reads the clock.

Tables are plain aligned columns (as `kubectl get` prints them), never truncated, so they can
be read in a narrow terminal's scrollback and still be cut with `awk`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson

from spool.execution import Execution
from spool.service import ScalingDecision, Service, ServiceStatus
from spool.trigger import Trigger
from spool_common.models import CronTriggerSpec, EventTriggerSpec

NONE = "-"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell, two spaces apart; the last one not padded."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    lines = []
    for row in [headers, *rows]:
        cells = [str(c).ljust(w) for c, w in zip(row, widths, strict=True)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def age(then: datetime | None, now: datetime) -> str:
    """How long ago, in the largest whole unit: 5s, 3m, 2h, 4d."""
    if then is None:
        return NONE
    seconds = max(0, int((now - then).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return NONE
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def percent(value: int | None) -> str:
    return NONE if value is None else f"{value}%"


def json_text(value: Any) -> str:
    """Indented JSON, as both modes print values (an output, a status)."""
    options = orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS
    return orjson.dumps(value, default=str, option=options).decode()


def executions_table(executions: Sequence[Execution], now: datetime) -> str:
    rows = [
        [
            e.id,
            e.service_name or e.service_id,
            e.function_name,
            e.status.value,
            percent(e.progress),
            str(e.attempts),
            age(e.created_at, now),
            duration(e.duration),
        ]
        for e in executions
    ]
    headers = ["ID", "SERVICE", "FUNCTION", "STATUS", "PROGRESS", "ATTEMPTS", "AGE", "DURATION"]
    return table(headers, rows)


def trigger_when(trigger: Trigger) -> str:
    """Cron: the expression. Event: resource, actions, mode and filter."""
    spec = trigger.spec
    if isinstance(spec, CronTriggerSpec):
        return f"cron {spec.cron}"
    assert isinstance(spec, EventTriggerSpec)
    actions = ",".join(a.value for a in spec.actions)
    text = f"{spec.resource.value} {actions} ({spec.execution_mode.value})"
    if spec.filter:
        text += " " + orjson.dumps(spec.filter).decode()
    return text


def triggers_table(triggers: Sequence[Trigger], services: dict[str, str]) -> str:
    """`services` names service ids (those it does not know are shown as ids)."""
    rows = [
        [
            t.id,
            t.name,
            t.type.value,
            "yes" if t.active else "no",
            services.get(t.spec.operation.service_id, t.spec.operation.service_id),
            t.spec.operation.function_name,
            trigger_when(t),
        ]
        for t in triggers
    ]
    return table(["ID", "NAME", "TYPE", "ACTIVE", "SERVICE", "FUNCTION", "WHEN"], rows)


def autoscaler_line(service: Service) -> str:
    """How the service is scaled: its autoscaler's settings, or a fixed replica count."""
    runtime = service.runtime
    scaler = runtime.autoscaler
    if scaler is None:
        return f"no autoscaler: runtime.numReplicas keeps {runtime.num_replicas} replica(s)"
    settings = scaler.to_wire()
    kind = settings.pop("type", "rabbitmq")
    low, high = settings.pop("minReplicas", None), settings.pop("maxReplicas", None)
    rest = ", ".join(f"{k} {v}" for k, v in settings.items() if v is not None)
    return f"autoscaler {kind}: {low}..{high} replicas" + (f", {rest}" if rest else "")


def scaling_table(decisions: Sequence[ScalingDecision], now: datetime) -> str:
    rows = [
        [
            age(d.at, now),
            NONE if d.from_ is None else str(d.from_),
            str(d.to),
            d.rule,
            d.reason,
        ]
        for d in decisions
    ]
    return table(["AGE", "FROM", "TO", "RULE", "REASON"], rows)


def replicas_text(service: Service, status: ServiceStatus, target: int | None) -> str:
    """How many replicas run, and how many should: the autoscaler's latest target when the
    service has one (the status's `desiredReplicas` is `runtime.numReplicas`)."""
    running = f"{len(status.runtime_status)} running"
    scaler = service.runtime.autoscaler
    if scaler is None or not service.active:
        return f"{running}, {status.desired_replicas} desired"
    wanted = NONE if target is None else str(target)
    bounds = f"{scaler.min_replicas}..{scaler.max_replicas}"
    return f"{running}, {wanted} wanted by the autoscaler ({bounds}; `spool scale` says why)"


def status_text(service: Service, status: ServiceStatus, target: int | None, now: datetime) -> str:
    """`target`: the autoscaler's latest decision, if the service has an autoscaler."""
    head = [
        ["service", f"{service.name} ({service.id})"],
        ["project", service.project_id],
        ["status", status.status + ("" if service.active else " (paused)")],
        ["revision", str(status.revision)],
        ["package", f"{service.package_id} {service.package_revision}"],
        ["replicas", replicas_text(service, status, target)],
    ]
    if service.crashloop:
        head.append(["crashloop", orjson.dumps(service.crashloop).decode()])
    text = "\n".join(f"{k:<10}{v}" for k, v in head)
    if status.runtime_status:
        rows = [
            [r.replica_id, r.state, r.reason or NONE, age(r.updated_at, now)]
            for r in status.runtime_status
        ]
        text += "\n\n" + table(["REPLICA", "STATE", "REASON", "SINCE"], rows)
    return text


def execution_line(execution: Execution) -> str:
    """`execution <id> <status>`, with the duration, or why it did not succeed."""
    text = f"execution {execution.id} {execution.status.value}"
    if execution.duration is not None:
        text += f" in {duration(execution.duration)}"
    if execution.error is not None:
        text += f": {execution.error.type}: {execution.error.message}"
    elif execution.status.is_terminal and execution.latest_status.message:
        text += f": {execution.latest_status.message}"
    return text
