"""A long job: `run` works through its steps, reporting progress and saving a checkpoint after
each, so that a retry resumes where the last attempt stopped.

The service (package.json) stops a call after `executionTimeout` seconds and, with
`onReset: rerun`, runs it again while `maxAttempts` allow. Two inputs make it misbehave on
purpose: `stall_first_attempt` hangs the first attempt halfway (the timeout stops it, the retry
resumes from the checkpoint and succeeds), and `fail_at_step` raises at that step (an exception
fails the execution at once: retries are for attempts that were stopped, not for bugs).
"""

import json
import os
import tempfile
import time
from pathlib import Path

import spool


class ServiceRunner(spool.BaseServiceRunner):
    def run(
        self,
        progress: spool.Progress,
        context: spool.Context,
        steps: int = 10,
        step_seconds: float = 0.5,
        stall_first_attempt: bool = False,
        fail_at_step: int | None = None,
    ):
        attempt = context.attempt  # 1, then 2 on the first rerun...
        checkpoint = Checkpoint(context.execution_id)
        done = checkpoint.load()
        if done:
            progress.update(progress=100 * done // steps, message=f"resumed after step {done}")
        for step in range(done + 1, steps + 1):
            self.kill_event()  # a terminate stops the job between steps
            if step == fail_at_step:
                raise RuntimeError(f"step {step} of {steps} failed on purpose")
            if stall_first_attempt and attempt == 1 and step > steps // 2:
                time.sleep(24 * 3600)  # hangs: the execution timeout stops this attempt
            time.sleep(step_seconds)
            checkpoint.save(step)
            progress.update(progress=100 * step // steps, message=f"step {step} of {steps}")
        checkpoint.remove()
        return {"steps": steps, "attempt": attempt, "resumedAfterStep": done}


class Checkpoint:
    """How far an execution got, in a file that outlives the attempt (the replica's temporary
    folder, or $CHECKPOINT_DIR)."""

    def __init__(self, execution_id):
        folder = Path(os.environ.get("CHECKPOINT_DIR") or tempfile.gettempdir())
        self.path = folder / f"long-job-{execution_id}.json"

    def load(self):
        if not self.path.exists():
            return 0
        return json.loads(self.path.read_text())["step"]

    def save(self, step):
        self.path.write_text(json.dumps({"step": step}))

    def remove(self):
        self.path.unlink(missing_ok=True)
