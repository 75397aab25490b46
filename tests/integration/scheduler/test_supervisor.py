"""The process driver against real processes; tiny Python scripts stand in for the agent."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import uvloop

from spool_scheduler.driver import (
    ReplicaObservation,
    ReplicaPhase,
    ReplicaSpec,
    ReplicaStartError,
    ResourceLimits,
)
from spool_scheduler.supervisor import KILL_MARGIN, ProcessSupervisor, reap_orphans

pytestmark = pytest.mark.integration

# Traps SIGTERM and drains for 0.5 s; records its environment and limits; logs to both streams.
DRAINING_AGENT = """
import os, signal, sys, time
from pathlib import Path

def drain(signum, frame):
    Path("draining").write_text("draining")
    time.sleep(0.5)
    sys.exit(0)

signal.signal(signal.SIGTERM, drain)
Path("environ").write_bytes(Path("/proc/self/environ").read_bytes())
Path("limits").write_text(Path("/proc/self/limits").read_text())
print("hello on stdout", flush=True)
print("hello on stderr", file=sys.stderr, flush=True)
Path("ready").write_text("")
while True:
    time.sleep(1)
"""

# Ignores SIGTERM and starts a grandchild (same process group) that ignores it too.
STUBBORN_AGENT = """
import signal, subprocess, sys, time
from pathlib import Path

signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
Path("grandchild.pid").write_text(str(child.pid))
Path("ready").write_text("")
while True:
    time.sleep(1)
"""

CRASHING_AGENT = "import sys; sys.exit(7)\n"

# Stands in for a scheduler: starts one replica with ProcessSupervisor, then waits to be killed.
SUPERVISOR = """
import asyncio, sys
from pathlib import Path
from spool_scheduler.driver import ReplicaSpec
from spool_scheduler.supervisor import ProcessSupervisor

async def main() -> None:
    state_dir, agent, replica_id = sys.argv[1:4]
    driver = ProcessSupervisor(command=[sys.executable, agent], state_dir=Path(state_dir))
    spec = ReplicaSpec(replica_id=replica_id, service_id="svc", revision=1, env={}, drain_time=1)
    await driver.start(spec)
    await asyncio.sleep(3600)

asyncio.run(main())
"""

DriverFactory = Callable[[str], ProcessSupervisor]


def spec(replica_id: str, **overrides: object) -> ReplicaSpec:
    fields: dict[str, object] = {"service_id": "svc-1", "revision": 3, "env": {}, "drain_time": 5}
    fields.update(overrides)
    return ReplicaSpec(replica_id=replica_id, **fields)  # type: ignore[arg-type]


async def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def gone(pid: int) -> bool:
    """True when the process no longer runs (a zombie counts: nothing runs in it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat[stat.rindex(")") + 2] in "ZX"


def only(driver: ProcessSupervisor) -> ReplicaObservation:
    (observation,) = driver.observe()
    return observation


def exited(driver: ProcessSupervisor) -> bool:
    return only(driver).phase is ReplicaPhase.EXITED


def all_exited(driver: ProcessSupervisor) -> bool:
    return all(o.phase is ReplicaPhase.EXITED for o in driver.observe())


def start_time_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2 :].split()[19])


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def scripts(tmp_path: Path) -> dict[str, Path]:
    sources = {
        "draining": DRAINING_AGENT,
        "stubborn": STUBBORN_AGENT,
        "crashing": CRASHING_AGENT,
        "supervisor": SUPERVISOR,
    }
    paths = {name: tmp_path / f"{name}.py" for name in sources}
    for name, source in sources.items():
        paths[name].write_text(source)
    return paths


@pytest.fixture
async def make_driver(scripts: dict[str, Path], state_dir: Path) -> AsyncIterator[DriverFactory]:
    drivers: list[ProcessSupervisor] = []

    def factory(agent: str) -> ProcessSupervisor:
        command = [sys.executable, str(scripts[agent])]
        drivers.append(ProcessSupervisor(command=command, state_dir=state_dir))
        return drivers[-1]

    yield factory
    for driver in drivers:
        await driver.close(grace=False)


async def test_started_replica_is_running_with_pid_file_and_log(
    make_driver: DriverFactory, state_dir: Path
) -> None:
    driver = make_driver("draining")
    before = time.monotonic()
    await driver.start(spec("r-start"))
    workdir = state_dir / "replicas" / "r-start"
    await wait_until((workdir / "ready").exists)

    seen = only(driver)
    assert (seen.replica_id, seen.service_id, seen.revision) == ("r-start", "svc-1", 3)
    assert seen.phase is ReplicaPhase.RUNNING
    assert seen.pid is not None
    assert not gone(seen.pid)
    assert before <= seen.started_at <= time.monotonic()
    assert (seen.exit_code, seen.exited_at) == (None, None)
    recorded_pid, _ = (workdir / "pid").read_text().split()
    assert int(recorded_pid) == seen.pid
    await wait_until(lambda: "hello on stderr" in (workdir / "agent.log").read_text())
    assert "hello on stdout" in (workdir / "agent.log").read_text()


async def test_crash_shows_as_exited_with_its_exit_code(
    make_driver: DriverFactory, state_dir: Path
) -> None:
    driver = make_driver("crashing")
    await driver.start(spec("r-crash"))
    await wait_until(lambda: exited(driver))

    seen = only(driver)
    assert seen.exit_code == 7
    assert seen.exited_at is not None
    assert seen.exited_at >= seen.started_at
    assert not (state_dir / "replicas" / "r-crash" / "pid").exists()
    driver.forget("r-crash")
    assert driver.observe() == []


async def test_graceful_stop_lets_the_agent_drain(
    make_driver: DriverFactory, state_dir: Path
) -> None:
    driver = make_driver("draining")
    await driver.start(spec("r-drain"))
    workdir = state_dir / "replicas" / "r-drain"
    await wait_until((workdir / "ready").exists)

    await driver.stop("r-drain")
    assert only(driver).phase is ReplicaPhase.STOPPING
    await wait_until(lambda: exited(driver))
    assert only(driver).exit_code == 0
    assert (workdir / "draining").read_text() == "draining"


async def test_agent_ignoring_sigterm_is_killed_with_its_group_after_drain_time(
    make_driver: DriverFactory, state_dir: Path
) -> None:
    driver = make_driver("stubborn")
    await driver.start(spec("r-stubborn", drain_time=0.5))
    workdir = state_dir / "replicas" / "r-stubborn"
    await wait_until((workdir / "ready").exists)
    grandchild = int((workdir / "grandchild.pid").read_text())

    stopped_at = time.monotonic()
    await driver.stop("r-stubborn")
    await wait_until(lambda: exited(driver), timeout=0.5 + KILL_MARGIN + 3)
    seen = only(driver)
    assert seen.exit_code == -signal.SIGKILL
    assert seen.exited_at is not None
    assert seen.exited_at - stopped_at >= 0.5 + KILL_MARGIN - 0.1
    await wait_until(lambda: gone(grandchild))


async def test_force_stop_kills_at_once_and_escalates_a_graceful_stop(
    make_driver: DriverFactory, state_dir: Path
) -> None:
    driver = make_driver("stubborn")
    for replica_id in ("r-force", "r-escalate"):
        await driver.start(spec(replica_id, drain_time=30))
        await wait_until((state_dir / "replicas" / replica_id / "ready").exists)

    await driver.stop("r-escalate")
    await driver.stop("r-force", force=True)
    await driver.stop("r-escalate", force=True)
    await wait_until(lambda: all_exited(driver), timeout=2.0)
    assert [o.exit_code for o in driver.observe()] == [-signal.SIGKILL, -signal.SIGKILL]


async def test_agent_environment_is_exactly_the_spec_env(
    make_driver: DriverFactory, state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPOOL_TEST_SCHEDULER_ONLY", "leak")
    driver = make_driver("draining")
    await driver.start(spec("r-env", env={"SPOOL_AGENT_VAR": "yes", "HOME": "/nowhere"}))
    workdir = state_dir / "replicas" / "r-env"
    await wait_until((workdir / "ready").exists)

    entries = (workdir / "environ").read_bytes().split(b"\0")
    assert sorted(e for e in entries if e) == [b"HOME=/nowhere", b"SPOOL_AGENT_VAR=yes"]


def limit_line(limits: str, name: str) -> list[str]:
    (line,) = [line for line in limits.splitlines() if line.startswith(name)]
    return line[len(name) :].split()[:2]


async def test_resource_limits_reach_the_agent(make_driver: DriverFactory, state_dir: Path) -> None:
    driver = make_driver("draining")
    limits = ResourceLimits(memory_bytes=2 << 30, open_files=123, processes=4000)
    await driver.start(spec("r-limits", limits=limits))
    workdir = state_dir / "replicas" / "r-limits"
    await wait_until((workdir / "ready").exists)

    text = (workdir / "limits").read_text()
    assert limit_line(text, "Max address space") == [str(2 << 30)] * 2
    assert limit_line(text, "Max open files") == ["123", "123"]
    assert limit_line(text, "Max processes") == ["4000", "4000"]


async def test_start_failures_are_reported(
    make_driver: DriverFactory, state_dir: Path, tmp_path: Path
) -> None:
    missing = ProcessSupervisor(command=[str(tmp_path / "no-such-agent")], state_dir=state_dir)
    with pytest.raises(ReplicaStartError, match="r-missing"):
        await missing.start(spec("r-missing"))
    driver = make_driver("draining")
    with pytest.raises(ReplicaStartError, match="r-huge"):
        await driver.start(spec("r-huge", limits=ResourceLimits(open_files=1 << 40)))
    with pytest.raises(ValueError, match="must match"):
        await driver.start(spec("../escape"))
    assert missing.observe() == driver.observe() == []


async def test_misuse_is_rejected(make_driver: DriverFactory, state_dir: Path) -> None:
    driver = make_driver("draining")
    await driver.start(spec("r-twice"))
    with pytest.raises(ValueError, match="already running"):
        await driver.start(spec("r-twice"))
    with pytest.raises(ValueError, match="not exited"):
        driver.forget("r-twice")
    with pytest.raises(KeyError, match="r-unknown"):
        await driver.stop("r-unknown")
    driver.forget("r-unknown")
    await driver.close(grace=False)
    with pytest.raises(RuntimeError, match="closed"):
        await driver.start(spec("r-late"))


async def test_close_drains_every_replica_and_waits(
    make_driver: DriverFactory, state_dir: Path
) -> None:
    driver = make_driver("draining")
    for replica_id in ("r-a", "r-b"):
        await driver.start(spec(replica_id))
        await wait_until((state_dir / "replicas" / replica_id / "ready").exists)

    await driver.close()
    assert [(o.phase, o.exit_code) for o in driver.observe()] == [(ReplicaPhase.EXITED, 0)] * 2
    assert (state_dir / "replicas" / "r-b" / "draining").exists()


async def start_supervisor(scripts: dict[str, Path], state_dir: Path, agent: str) -> int:
    """Start a scheduler stand-in running one agent; return the agent's pid once it is ready."""
    supervisor = await asyncio.create_subprocess_exec(
        sys.executable, str(scripts["supervisor"]), str(state_dir), str(scripts[agent]), "r-1"
    )
    workdir = state_dir / "replicas" / "r-1"
    try:
        await wait_until((workdir / "ready").exists, timeout=10)
    finally:
        supervisor.kill()  # like a crash of the scheduler: no chance to clean up
        await supervisor.wait()
    return int((workdir / "pid").read_text().split()[0])


async def test_agent_drains_when_its_scheduler_dies(
    scripts: dict[str, Path], state_dir: Path
) -> None:
    try:
        agent = await start_supervisor(scripts, state_dir, "draining")
        await wait_until((state_dir / "replicas" / "r-1" / "draining").exists)
        await wait_until(lambda: gone(agent))
    finally:
        reap_orphans(state_dir, grace=0.1)


async def test_reap_orphans_kills_a_recorded_agent_but_not_a_recycled_pid(
    scripts: dict[str, Path], state_dir: Path
) -> None:
    try:
        agent = await start_supervisor(scripts, state_dir, "stubborn")
        grandchild = int((state_dir / "replicas" / "r-1" / "grandchild.pid").read_text())
    except BaseException:
        reap_orphans(state_dir, grace=0.1)
        raise
    stranger = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import time; time.sleep(30)", start_new_session=True
    )
    stale = state_dir / "replicas" / "r-old" / "pid"
    stale.parent.mkdir(parents=True)
    stale.write_text(f"{stranger.pid} {start_time_of(stranger.pid) + 1}\n")
    try:
        assert reap_orphans(state_dir, grace=0.3) == [agent]
        await wait_until(lambda: gone(agent) and gone(grandchild))
        assert not gone(stranger.pid)
        assert list((state_dir / "replicas").glob("*/pid")) == []
    finally:
        stranger.kill()
        await stranger.wait()


async def scenario_on_uvloop(state_dir: Path, scripts: dict[str, Path]) -> None:
    draining = ProcessSupervisor(
        command=[sys.executable, str(scripts["draining"])], state_dir=state_dir
    )
    crashing = ProcessSupervisor(
        command=[sys.executable, str(scripts["crashing"])], state_dir=state_dir
    )
    await draining.start(spec("r-uv", limits=ResourceLimits(open_files=77)))
    await crashing.start(spec("r-uv-crash"))
    workdir = state_dir / "replicas" / "r-uv"
    await wait_until((workdir / "ready").exists)
    await wait_until(lambda: exited(crashing))
    await draining.close()
    assert only(draining).exit_code == 0
    assert only(crashing).exit_code == 7
    assert limit_line((workdir / "limits").read_text(), "Max open files") == ["77", "77"]


def test_driver_works_on_uvloop(state_dir: Path, scripts: dict[str, Path]) -> None:
    uvloop.run(scenario_on_uvloop(state_dir, scripts))
