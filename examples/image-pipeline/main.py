"""Describe every image uploaded to /incoming: an Item Created trigger runs `describe`."""

import time

import spool

STEPS = ("read", "thumbnail", "classify", "write back")


class ServiceRunner(spool.BaseServiceRunner):
    def describe(self, item: spool.Item, progress: spool.Progress, context: spool.Context):
        progress.update(progress=0, message=f"started on {item.name}")
        for done, step in enumerate(STEPS, start=1):
            time.sleep(0.2)  # the work of this step
            progress.update(progress=100 * done // len(STEPS), message=step)
        system = item.get("metadata", {}).get("system", {})
        return {
            "itemId": item.id,
            "name": item.name,
            "mimetype": system.get("mimetype"),
            "size": system.get("size"),
            "steps": list(STEPS),
            "triggerId": context.trigger_id,
            "action": (context.event or {}).get("action"),
        }
