"""The guide's snippets match the SDK and the CLI they document.

Every ```python block of docs/guide/*.md is compiled, and each attribute chain that starts at
the name `spool` (`spool.packages.push`, `spool.TriggerResource.ITEM`) is resolved against the
real package, as far as it goes through modules, classes and the SDK's repositories. Every
`spool ...` line of a ```sh block is parsed by the CLI's own parser. So a renamed or removed
name, command or flag fails here instead of in a reader's terminal.
"""

from __future__ import annotations

import ast
import inspect
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import spool
from spool.cli import build_parser
from spool.client import Bound

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "guide"
FENCE = re.compile(r"^```python\n(?P<body>.*?)^```$", re.MULTILINE | re.DOTALL)
SHELL_FENCE = re.compile(r"^```sh\n(?P<body>.*?)^```$", re.MULTILINE | re.DOTALL)
PLACEHOLDER = re.compile(r"<[^<>]+>")  # <execution id>, <project id>


@dataclass(frozen=True)
class Snippet:
    path: Path
    line: int  # of the block's first code line in the Markdown file
    source: str

    def __str__(self) -> str:
        return f"{self.path.name}:{self.line}"


def snippets(text: str, path: Path) -> list[Snippet]:
    """Pure: the ```python blocks of a Markdown text, with the line each starts on."""
    return [
        Snippet(path, text.count("\n", 0, m.start("body")) + 1, m.group("body"))
        for m in FENCE.finditer(text)
    ]


def cli_lines(text: str) -> list[str]:
    """Pure: the `spool ...` commands of a Markdown text's ```sh blocks, continuation lines
    joined, placeholders such as `<execution id>` replaced by a plain word."""
    found = []
    for block in SHELL_FENCE.finditer(text):
        for line in block.group("body").replace("\\\n", " ").splitlines():
            if line.startswith("spool "):
                found.append(PLACEHOLDER.sub("x", line))
    return found


def command_words(line: str) -> list[str]:
    """Pure: the words of a shell line up to its first operator (`<`, `|`, `&&`...) or
    comment, as the shell would pass them to the command."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    words = []
    for word in lexer:
        if set(word) <= set("<>|&;()"):
            break
        words.append(word)
    return words


def spool_chains(tree: ast.AST) -> list[tuple[str, ...]]:
    """Pure: the longest attribute chains rooted at the name `spool`: `spool.a.b` -> (a, b)."""
    # Attributes that are the object of another attribute: part of a longer chain.
    inner = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    chains = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or id(node) in inner:
            continue
        names: list[str] = []
        current: ast.expr = node
        while isinstance(current, ast.Attribute):
            names.append(current.attr)
            current = current.value
        if isinstance(current, ast.Name) and current.id == "spool":
            chains.append(tuple(reversed(names)))
    return chains


def _descends(value: Any) -> bool:
    """Whether names under `value` can be checked without running anything: modules, classes
    and the SDK's repositories (`spool.packages`), not properties' results or call results."""
    return isinstance(value, ModuleType | type | Bound)


def missing_name(chain: tuple[str, ...]) -> str | None:
    """The first name of `spool.<chain>` that does not exist, as a dotted path; else None.
    Attributes are read statically (no property runs); a pydantic field counts as present."""
    value: Any = spool
    for depth, name in enumerate(chain):
        if not _descends(value):
            return None
        try:
            value = inspect.getattr_static(value, name)
        except AttributeError:
            if isinstance(value, type) and name in getattr(value, "model_fields", {}):
                return None
            return ".".join(("spool", *chain[: depth + 1]))
        if isinstance(value, staticmethod | classmethod):
            return None
    return None


def _all_snippets() -> list[Snippet]:
    found = []
    for path in sorted(GUIDE.glob("*.md")):
        found.extend(snippets(path.read_text(encoding="utf-8"), path))
    return found


ALL = _all_snippets()
COMMANDS = [
    (path.name, line)
    for path in sorted(GUIDE.glob("*.md"))
    for line in cli_lines(path.read_text(encoding="utf-8"))
]


def test_the_guide_has_python_snippets() -> None:
    pages = {s.path.name for s in ALL}
    assert {"packages.md", "services.md", "executions.md", "triggers.md"} <= pages


@pytest.mark.parametrize("snippet", ALL, ids=str)
def test_snippet_compiles(snippet: Snippet) -> None:
    compile(snippet.source, str(snippet), "exec")


@pytest.mark.parametrize("snippet", ALL, ids=str)
def test_snippet_uses_only_names_the_sdk_has(snippet: Snippet) -> None:
    tree = ast.parse(snippet.source, str(snippet))
    missing = sorted({m for c in spool_chains(tree) if (m := missing_name(c)) is not None})
    assert missing == [], f"{snippet}: not in the spool package: {', '.join(missing)}"


def test_the_guide_has_cli_lines() -> None:
    commands = {command_words(line)[1] for _, line in COMMANDS}
    assert {"login", "push", "deploy", "exec", "logs", "triggers", "replay"} <= commands


@pytest.mark.parametrize(("page", "line"), COMMANDS, ids=[f"{p}: {c}" for p, c in COMMANDS])
def test_cli_line_parses(page: str, line: str) -> None:
    try:
        build_parser().parse_args(command_words(line)[1:])
    except SystemExit:  # argparse's answer to an unknown command or flag
        pytest.fail(f"{page}: the spool command refuses: {line}")


def test_cli_lines_are_found_joined_and_without_placeholders() -> None:
    text = "```sh\nspool logs <execution id> \\\n  -f\ncurl x\n```\n```python\nspool x\n```\n"
    assert cli_lines(text) == ["spool logs x    -f"]


@pytest.mark.parametrize(
    ("line", "words"),
    [
        (
            "spool login URL --token-stdin < my-token  # a comment",
            ["spool", "login", "URL", "--token-stdin"],
        ),
        (
            "spool exec hello -i name=world --wait | tail -1",
            ["spool", "exec", "hello", "-i", "name=world", "--wait"],
        ),
        (
            "spool triggers create c --cron '*/5 * * * *'",
            ["spool", "triggers", "create", "c", "--cron", "*/5 * * * *"],
        ),
        (
            """spool exec h --input '{"a": 1}' && echo ok""",
            ["spool", "exec", "h", "--input", '{"a": 1}'],
        ),
    ],
)
def test_command_words_stop_at_shell_operators(line: str, words: list[str]) -> None:
    assert command_words(line) == words


def test_a_block_is_found_with_its_line() -> None:
    text = "# t\n\n```python\nimport spool\nspool.login()\n```\n\n```sh\nspool login\n```\n"
    (found,) = snippets(text, Path("t.md"))
    assert (found.line, found.source) == (4, "import spool\nspool.login()\n")


@pytest.mark.parametrize(
    ("source", "missing"),
    [
        ("spool.packages.push(src_path='.')", []),
        ("spool.TriggerResource.ITEM", []),
        ("spool.KubernetesRuntime(concurrency=2).with_limits(mem='1G')", []),
        ("spool.KubernetesRuntime.concurrency", []),
        ("spool.local.replay", []),
        ("spool.execute({})", ["spool.execute"]),
        ("spool.packages.upload('.')", ["spool.packages.upload"]),
        ("spool.TriggerResource.FOLDER", ["spool.TriggerResource.FOLDER"]),
        ("x = spool.Filters(); x.anything", []),
    ],
)
def test_a_name_the_sdk_lacks_is_reported(source: str, missing: list[str]) -> None:
    chains = spool_chains(ast.parse(source))
    assert sorted({m for c in chains if (m := missing_name(c)) is not None}) == missing
