"""What happens to a delivery, decided in one place by a pure function of the outcome."""

from __future__ import annotations

from enum import StrEnum


class Disposition(StrEnum):
    ACK = "ack"  # done with it: recorded, or a harmless duplicate
    REQUEUE = "requeue"  # transient failure before anything was recorded: try again later
    DEAD_LETTER = "dead-letter"  # permanent: it can never succeed; keep it for inspection


class Outcome(StrEnum):
    HANDLED = "handled"
    DUPLICATE = "duplicate"
    UNDECODABLE = "undecodable"  # bad JSON, unknown type or version
    REJECTED = "rejected"  # decoded, but permanently invalid (a poison message)
    TRANSIENT = "transient"  # the store or the bus failed for now


def disposition_for(outcome: Outcome) -> Disposition:
    """Ack what is done, requeue what may work later, dead-letter what never will."""
    if outcome in (Outcome.HANDLED, Outcome.DUPLICATE):
        return Disposition.ACK
    if outcome is Outcome.TRANSIENT:
        return Disposition.REQUEUE
    return Disposition.DEAD_LETTER
