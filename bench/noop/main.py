import time


class ServiceRunner:
    """The benchmark's functions: `noop` does nothing, so that only the platform is measured;
    `sleep` holds a replica busy (for the autoscaler's figure)."""

    def noop(self) -> None:
        return None

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)
