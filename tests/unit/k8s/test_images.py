"""images/: every image k8s/ runs is built from a Containerfile there by `make images`, and the
two Containerfiles build the same non-root Python environment from a Debian base."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
IMAGES = ROOT / "images"
SCRIPT = ROOT / "scripts" / "build-images.sh"
CONTAINERFILES = {"spool-runner": "runner", "spool-control-plane": "control-plane"}
COMMANDS = {  # what each image runs when nothing else is said
    "runner": ["python", "-m", "spool_agent"],
    "control-plane": ["python", "-m", "spool_gateway"],
}


def _k8s_images() -> set[str]:
    """Every image a manifest names: the containers' and the runner image the scheduler uses."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("image"), str):
                found.add(node["image"])
            if node.get("name") == "SPOOL_K8S_RUNNER_IMAGE":
                found.add(node["value"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for path in sorted((ROOT / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            walk(doc)
    return found


def _containerfile(stem: str) -> str:
    return (IMAGES / f"{stem}.Containerfile").read_text()


def _instructions(text: str) -> list[str]:
    """The instructions, continuation lines joined, comments and blank lines left out."""
    joined = re.sub(r"\\\n\s*", " ", text)
    return [line.strip() for line in joined.splitlines() if line.strip() and line[0] != "#"]


def _stages(text: str) -> list[list[str]]:
    """The instructions before the first FROM, then those of each stage."""
    stages: list[list[str]] = [[]]
    for instruction in _instructions(text):
        if instruction.startswith("FROM "):
            stages.append([])
        stages[-1].append(instruction)
    return stages


def test_every_image_k8s_runs_is_built_from_a_containerfile_by_make_images() -> None:
    images = _k8s_images()
    assert images == {"spool-control-plane:latest", "spool-runner:latest"}
    script = SCRIPT.read_text()
    for image in images:
        name, _ = image.split(":")
        stem = CONTAINERFILES[name]
        assert (IMAGES / f"{stem}.Containerfile").is_file()
        # The script tags the image it builds from that file with the name k8s/ uses.
        variable = re.search(rf"^(\w+)=localhost/{name}:\$TAG$", script, re.MULTILINE)
        assert variable is not None, name
        assert f'build_image images/{stem}.Containerfile "${variable[1]}"' in script
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^images:.*\n(\t.*\n)*\t.*scripts/build-images\.sh", makefile, re.MULTILINE)


def test_the_two_containerfiles_differ_only_in_their_final_stage() -> None:
    runner, control_plane = (_stages(_containerfile(stem)) for stem in COMMANDS)
    assert runner[:-1] == control_plane[:-1]
    preamble, os_stage, build, _ = runner
    assert preamble == ["ARG BASE=debian:bookworm-slim"]
    assert os_stage[0] == "FROM ${BASE} AS os"
    # Runtime dependencies only: the project itself, not its dev extra.
    (install,) = [i for i in build if "pip install" in i]
    assert " /src " in f"{install} "
    assert "[dev]" not in install


@pytest.mark.parametrize("stem", sorted(COMMANDS))
def test_each_image_runs_its_command_as_user_10001(stem: str) -> None:
    final = _stages(_containerfile(stem))[-1]
    assert final[0] == "FROM os"
    assert "COPY --from=build /opt/spool /opt/spool" in final
    assert any(i.startswith("RUN useradd --uid 10001 ") for i in final)
    users = [i for i in final if i.startswith("USER ")]
    assert users == ["USER 10001:10001"]
    (cmd,) = [i for i in final if i.startswith("CMD ")]
    assert yaml.safe_load(cmd.removeprefix("CMD ")) == COMMANDS[stem]
    assert final.index(users[0]) > max(i for i, line in enumerate(final) if line[:4] == "RUN ")


def test_what_the_containerfiles_copy_is_in_the_build_context() -> None:
    ignored = {
        line.strip().rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for stem in COMMANDS:
        for instruction in _instructions(_containerfile(stem)):
            if instruction.startswith("COPY ") and "--from=" not in instruction:
                *sources, _ = instruction.split()[1:]
                for source in sources:
                    assert (ROOT / source).exists(), source
                    assert source.split("/")[0] not in ignored, source
    # images/wheels exists in a fresh clone too (it holds only a .gitignore there).
    assert (IMAGES / "wheels" / ".gitignore").is_file()
