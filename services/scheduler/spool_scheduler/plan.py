"""Pure: how many replicas a service wants, and what a replica's exit means for it."""

from __future__ import annotations

import hashlib

import orjson

from spool_common.exit_codes import AgentExit
from spool_common.messages import ReplicaState
from spool_common.models import Service

# Fields that do not change what a replica runs: changing them scales, pauses or annotates
# the service without replacing its replicas (the pod template of a Kubernetes Deployment).
_NOT_TEMPLATE = ("active", "crashloop", "createdAt", "creator", "updatedAt", "updatedBy", "url")
_NOT_TEMPLATE_RUNTIME = ("numReplicas", "autoscaler")


def template_hash(service: Service) -> str:
    """A digest of everything a replica runs with; equal digests mean a change needs no
    rollout (a new numReplicas scales, it does not replace replicas)."""
    wire = service.to_wire()
    for key in _NOT_TEMPLATE:
        wire.pop(key, None)
    runtime = dict(wire.get("runtime") or {})
    for key in _NOT_TEMPLATE_RUNTIME:
        runtime.pop(key, None)
    wire["runtime"] = runtime
    return hashlib.sha256(orjson.dumps(wire, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


# How the agent ends (spool_common.exit_codes); anything else is a crash.
_AGENT_EXITS = {
    AgentExit.STOPPED: "stopped",
    AgentExit.INIT_FAILED: "init failed: the service class's __init__ raised (see its log)",
    AgentExit.REQUIREMENTS_FAILED: "requirements could not be installed (see pip's output)",
    AgentExit.RUNNER_CRASHED: "the runner process running user code died",
    AgentExit.CODEBASE_ERROR: "the entry module could not be imported or has no such class",
    AgentExit.UNAUTHORIZED: "the gateway refused the replica's credential",
}


def exit_state(exit_code: int | None) -> tuple[ReplicaState, str]:
    """What an exited replica means for the service: stopped cleanly, or failed and why."""
    if exit_code == 0:
        return ReplicaState.STOPPED, _AGENT_EXITS[AgentExit.STOPPED]
    if exit_code is not None and exit_code < 0:
        return ReplicaState.FAILED, f"killed by signal {-exit_code}"
    if exit_code is None:
        return ReplicaState.FAILED, "exited; its exit code is unknown"
    known = {int(code): text for code, text in _AGENT_EXITS.items()}
    return ReplicaState.FAILED, known.get(exit_code, f"exited with code {exit_code}")
