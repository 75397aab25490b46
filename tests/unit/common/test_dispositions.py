"""Ack, requeue or dead-letter: one decision per outcome, and every outcome has one."""

from __future__ import annotations

import pytest

from spool_common.bus.dispositions import Disposition, Outcome, disposition_for

EXPECTED = {
    Outcome.HANDLED: Disposition.ACK,  # recorded: never deliver it again
    Outcome.DUPLICATE: Disposition.ACK,  # harmless: drop it
    Outcome.UNDECODABLE: Disposition.DEAD_LETTER,  # can never succeed: keep it for inspection
    Outcome.REJECTED: Disposition.DEAD_LETTER,  # a poison message: never loop on it
    Outcome.TRANSIENT: Disposition.REQUEUE,  # store or bus down for now: try again
}


def test_the_table_covers_every_outcome() -> None:
    assert set(EXPECTED) == set(Outcome)


@pytest.mark.parametrize("outcome", list(Outcome), ids=str)
def test_disposition_for(outcome: Outcome) -> None:
    assert disposition_for(outcome) is EXPECTED[outcome]


def test_only_transient_failures_are_redelivered() -> None:
    requeued = {o for o in Outcome if disposition_for(o) is Disposition.REQUEUE}
    assert requeued == {Outcome.TRANSIENT}
