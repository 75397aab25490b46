"""Installing a package's requirements.txt when a replica starts, into the replica's own
folder (`deps/`), with pip's output in the replica's log."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from spool_common.models import Requirement

PIP_TIMEOUT = 900.0  # a slow index is not a reason to wait forever


class RequirementsError(Exception):
    """pip could not install the requirements; the message ends with pip's last lines."""


def requirement_line(requirement: Requirement) -> str:
    if requirement.version is None:
        return requirement.name
    return f"{requirement.name}{requirement.operator or '=='}{requirement.version}"


def pip_command(target: Path, requirements_file: Path) -> list[str]:
    """pip with the agent's own interpreter; PIP_* settings in the environment apply
    (an index URL, find-links, a proxy)."""
    return [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--no-input",
        "--disable-pip-version-check",
        "--target",
        str(target),
        "-r",
        str(requirements_file),
    ]


def _write_listing(requirements: list[Requirement], target: Path) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    listing = target.parent / "requirements.txt"
    listing.write_text("".join(requirement_line(r) + "\n" for r in requirements))
    return listing


async def install(requirements: list[Requirement], target: Path) -> None:
    """Install into `target`; pip's output goes to this process's stdout (the replica log)."""
    listing = _write_listing(requirements, target)
    process = await asyncio.create_subprocess_exec(
        *pip_command(target, listing),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), PIP_TIMEOUT)
    except TimeoutError as e:
        process.kill()
        raise RequirementsError(f"pip did not finish within {PIP_TIMEOUT:.0f} s") from e
    text = output.decode(errors="replace")
    sys.stdout.write(text)
    sys.stdout.flush()
    if process.returncode != 0:
        tail = "\n".join(text.strip().splitlines()[-5:])
        raise RequirementsError(f"pip exited with code {process.returncode}:\n{tail}")
