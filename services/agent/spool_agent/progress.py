"""Pure: which progress updates are worth recording (the seed's 5-point rule)."""

from __future__ import annotations

MIN_STEP = 5


def should_record(last_recorded: int | None, percent: int) -> bool:
    """Record a rise of at least 5 points over the last recorded value (0 before the first),
    and 100 always, once."""
    if percent >= 100:
        return last_recorded != 100
    return percent - (last_recorded or 0) >= MIN_STEP
