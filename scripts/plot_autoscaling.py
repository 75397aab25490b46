"""Simulate the documented autoscaling scenario and draw docs/autoscaling.png.

    .venv/bin/python scripts/plot_autoscaling.py [output.png]

The scenario (docs/autoscaling.md, "The simulated scenario"): idle, a burst, a slow tail, idle,
a steady load, the same load with the function four times slower, recovery, idle. It prints
the decisions and the reaction times the documentation quotes, so the numbers there can be
checked by running this again.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot: no display needed

import matplotlib.pyplot as plt
from matplotlib.axes import Axes

from spool_autoscaler.rules import LatencyPolicy
from spool_autoscaler.simulate import Phase, Step, simulate
from spool_common.models import RabbitmqAutoscaler

ROOT = Path(__file__).resolve().parent.parent
SCALER = RabbitmqAutoscaler(
    min_replicas=0, max_replicas=6, queue_length=20, cooldown_period=120, polling_interval=10
)
LATENCY = LatencyPolicy()  # the defaults: p75 over 60 s, above 2.0 s / below 1.0 s
CONCURRENCY = 5  # executions at once per replica
DURATION = 0.8  # seconds per execution at normal speed
STARTUP_DELAY = 10.0  # seconds from asking for a replica to its being ready
TRACE = (  # executions a second; the burst starts between two polls, as bursts do
    Phase("idle", 65, 0),
    Phase("burst", 60, 30),
    Phase("slow tail", 240, 3),
    Phase("idle", 240, 0),
    Phase("steady", 120, 2),
    Phase("slowdown x4", 300, 2, slowdown=4),
    Phase("recovered", 300, 2),
    Phase("idle", 240, 0),
)
SHORT = {"queue": "Q", "rps": "R", "latency": "L", "bounds": "B", "hold": "H", "paused": "P"}


def run() -> list[Step]:
    return simulate(
        TRACE,
        SCALER,
        per_replica_rate=CONCURRENCY / DURATION,
        concurrency=CONCURRENCY,
        latency=LATENCY,
        start_replicas=0,
        startup_delay=STARTUP_DELAY,
    )


def phase_starts() -> list[tuple[float, str]]:
    starts, t = [], 0.0
    for phase in TRACE:
        starts.append((t, phase.name))
        t += phase.seconds
    return starts


def plot(steps: list[Step], out: Path) -> None:
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(13, 7.5), sharex=True, height_ratios=[3, 2])
    right = _counts(top, steps)
    _latency(bottom, steps)
    for s in steps:
        if s.rule is None:
            continue
        for ax in (top, bottom):
            ax.axvline(s.t, color="grey", lw=0.6, alpha=0.6)
        label, at = f"{SHORT.get(s.rule, s.rule)}→{s.desired}", (s.t, SCALER.max_replicas + 0.6)
        right.annotate(label, at, fontsize=7, rotation=90, ha="right", va="top", color="dimgrey")
    for start, name in phase_starts():
        at, axes = (start + 5, 0.95), ("data", "axes fraction")
        bottom.annotate(name, at, xycoords=axes, fontsize=8, va="top")
        bottom.axvline(start, color="black", lw=0.8)
    top.set_title(
        "Spool autoscaler, simulated: queueLength 20, replicas 0-6, cooldown 120 s, polling 10 s;"
        " Q/L/B = queue/latency/bounds rule decided"
    )
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def _counts(top: Axes, steps: list[Step]) -> Axes:
    """Queue and in flight on the left axis, replicas on the right one (returned)."""
    t = [s.t for s in steps]
    top.plot(t, [s.queued for s in steps], color="tab:blue", label="queued")
    top.plot(t, [s.in_flight for s in steps], color="tab:cyan", label="in flight")
    top.set_ylabel("executions")
    top.set_yscale("symlog", linthresh=10)
    right = top.twinx()
    right.step(t, [s.desired for s in steps], where="post", color="tab:red", label="desired")
    ready = [s.ready for s in steps]
    right.step(t, ready, where="post", color="tab:orange", ls="--", label="ready")
    right.set_ylabel("replicas")
    right.set_ylim(0, SCALER.max_replicas + 1)
    lines = top.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    top.legend(lines, [str(line.get_label()) for line in lines], loc="upper right", fontsize=8)
    return right


def _latency(bottom: Axes, steps: list[Step]) -> None:
    p75 = [s.p75 if s.p75 is not None else float("nan") for s in steps]
    bottom.plot([s.t for s in steps], p75, color="tab:purple", label="p75 latency (60 s window)")
    bottom.axhline(LATENCY.high, color="tab:red", ls=":", label=f"high {LATENCY.high} s")
    bottom.axhline(LATENCY.low, color="tab:green", ls=":", label=f"low {LATENCY.low} s")
    bottom.set_yscale("log")
    bottom.set_ylabel("seconds")
    bottom.set_xlabel("time (s)")
    bottom.legend(loc="center right", fontsize=8)


def report(steps: list[Step]) -> None:
    for s in steps:
        if s.reason is not None:
            print(f"{s.t:6.0f} s  {s.rule:<7} → {s.desired}: {s.reason}")
    busy = [s.t for s in steps if s.queued or s.in_flight]
    print(f"work seen at {busy[0]:.0f} s ... {busy[-1]:.0f} s")
    for start, name in phase_starts():
        first = next((s for s in steps if s.t >= start and s.rule is not None), None)
        if first is not None:
            print(f"{name} from {start:.0f} s: first change at {first.t:.0f} s ({first.rule})")


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "autoscaling.png"
    steps = run()
    report(steps)
    plot(steps, out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
