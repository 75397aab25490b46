"""Pure: how many replicas a service wants, shared by the scheduler (which starts them) and
the gateway (which reports them in a service's status)."""

from __future__ import annotations

from spool_common.models import Service


def desired_replicas(service: Service, deleted: bool, scaled: int | None = None) -> int | None:
    """A deleted or paused service wants no deployment (None); otherwise the autoscaler's
    latest count (`scaled`) or runtime.numReplicas, kept within the autoscaler's bounds when
    one is set."""
    if deleted or not service.active:
        return None
    scaler = service.runtime.autoscaler
    replicas = scaled if scaled is not None and scaler is not None else service.runtime.num_replicas
    if scaler is not None:
        replicas = min(max(replicas, scaler.min_replicas), scaler.max_replicas)
    return replicas
