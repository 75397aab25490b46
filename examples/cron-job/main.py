"""A job the platform runs on a schedule: the cron trigger in package.json calls `tick` every
minute with the input it names."""

from datetime import UTC, datetime

import spool


class ServiceRunner(spool.BaseServiceRunner):
    def __init__(self):
        self.ticks = 0  # ticks this replica has run

    def tick(self, config: dict, context: spool.Context):
        self.ticks += 1
        context.logger.info("tick %d of trigger %s", self.ticks, context.trigger_id)
        return {
            "report": config.get("report"),
            "at": datetime.now(UTC).isoformat(),
            "tick": self.ticks,
            "triggerId": context.trigger_id,
        }
