"""Backoff as data: a validated policy turns a failure count into a delay.

Pure: no clock, no `random`, no I/O. The caller injects `rand` (uniform in [0, 1)), so the
same inputs always give the same delay and tests need no seeding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class BackoffPolicy:
    """Exponential backoff with a cap and symmetric jitter.

    The n-th consecutive failure (n >= 1) waits `initial * factor ** (n - 1)` seconds, capped at
    `maximum`, then spread by up to `jitter` of itself either way and capped at `maximum` again.
    """

    initial: float = 1.0
    factor: float = 2.0
    maximum: float = 60.0
    jitter: float = 0.1

    def __post_init__(self) -> None:
        for name in ("initial", "factor", "maximum", "jitter"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"backoff {name} must be a finite number")
        if self.initial <= 0:
            raise ValueError(f"backoff initial must be > 0 seconds, got {self.initial}")
        if self.factor < 1:
            raise ValueError(f"backoff factor must be >= 1, got {self.factor}")
        if self.maximum < self.initial:
            raise ValueError(
                f"backoff maximum ({self.maximum}) must be >= initial ({self.initial})"
            )
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"backoff jitter must be a fraction in [0, 1], got {self.jitter}")

    def delay(self, failures: int, rand: float) -> float:
        """Seconds to wait after `failures` consecutive failures; 0 failures -> no wait."""
        if failures < 0:
            raise ValueError(f"failures must be >= 0, got {failures}")
        if not 0 <= rand < 1:
            raise ValueError(f"rand must be in [0, 1), got {rand}")
        if failures == 0:
            return 0.0
        base = min(self.maximum, self.initial * self.factor ** self._exponent(failures))
        return min(self.maximum, base * (1 + self.jitter * (2 * rand - 1)))

    def _exponent(self, failures: int) -> int:
        # Clamp the exponent where the cap is reached so huge failure counts cannot overflow.
        if self.factor == 1:
            return 0
        steps_to_cap = math.ceil(math.log(self.maximum / self.initial, self.factor))
        return min(failures - 1, steps_to_cap)
