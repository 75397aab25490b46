"""Failpoints: which names the variable arms, and what an armed point does to a real process
(a child Python: `os._exit` cannot be observed from inside the process it ends)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from spool_common.failpoints import ENV, EXIT_STATUS, armed_points

PROGRAM = (
    "from spool_common.failpoints import failpoint\n"
    "failpoint('outbox.before_publish')\n"
    "print('survived', flush=True)\n"
)


@pytest.mark.parametrize(
    ("value", "points"),
    [
        pytest.param("", set(), id="unset"),
        pytest.param("outbox.before_publish", {"outbox.before_publish"}, id="one"),
        pytest.param("a,b", {"a", "b"}, id="two"),
        pytest.param(" a , b ", {"a", "b"}, id="blanks-around"),
        pytest.param("a,,b,", {"a", "b"}, id="empty-parts"),
        pytest.param(" , ", set(), id="only-separators"),
        pytest.param("a,a", {"a"}, id="repeated"),
    ],
)
def test_the_variable_arms_the_points_it_names(value: str, points: set[str]) -> None:
    assert armed_points(value) == points


def _run(failpoints: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != ENV}
    if failpoints is not None:
        env[ENV] = failpoints
    return subprocess.run(
        [sys.executable, "-c", PROGRAM], env=env, capture_output=True, text=True, timeout=60
    )


def test_an_armed_point_ends_the_process_as_kill_9_would_after_one_log_line() -> None:
    done = _run("other.point,outbox.before_publish")
    assert done.returncode == EXIT_STATUS == 137
    assert "survived" not in done.stdout
    output = done.stdout + done.stderr
    assert output.count("failpoint_hit") == 1, output
    assert "outbox.before_publish" in output


@pytest.mark.parametrize("failpoints", [None, "", "outbox.before_delete"])
def test_an_unarmed_point_does_nothing(failpoints: str | None) -> None:
    done = _run(failpoints)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "survived\n"
    assert "failpoint_hit" not in done.stderr
