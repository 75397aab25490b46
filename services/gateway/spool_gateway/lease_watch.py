"""When the reaper may take an expired lease for a dead agent (pure; app.py's `_reaper` acts).

Agents renew their leases through RabbitMQ, so a lease only means something for the time
renewals could be recorded. Lease time that passed unwatched (this process starting, a round
that failed on PostgreSQL) makes the next round give every running attempt a fresh lease
before it reaps. A broker that passed no publish needs more: once it runs again it keeps a
frozen or cut-off client's old connection, and with it the agent's exclusive queues, until it
has missed two heartbeats, checked once per heartbeat interval, so agents reconnect only then
(8 to 10 s after a frozen broker resumed, with 3 s heartbeats, on a loaded 2-core machine),
and renew at once (spool_agent/reporting.py). So after a failed broker probe, rounds only
extend leases for `quiet` seconds (three heartbeats and a lease) before reaping again.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LeaseWatch:
    blind: bool = True  # lease time passed that nobody watched: extend before reaping
    quiet_until: float = 0.0  # monotonic seconds: until then, rounds only extend

    def plan(self, now: float) -> tuple[bool, bool]:
        """(extend every running lease first, reap expired ones) for a round at `now`."""
        return self.blind, now >= self.quiet_until

    def succeeded(self, now: float) -> LeaseWatch:
        return LeaseWatch(now < self.quiet_until, self.quiet_until)

    def failed(self, now: float, quiet: float = 0.0) -> LeaseWatch:
        """A round could not watch: extend on the next one, and only extend until `quiet`
        seconds from now have passed."""
        return LeaseWatch(True, max(self.quiet_until, now + quiet))


def broker_quiet(heartbeat: float, lease: float) -> float:
    """How long rounds only extend after the broker passed no publish (see the docstring)."""
    return 3 * heartbeat + lease
