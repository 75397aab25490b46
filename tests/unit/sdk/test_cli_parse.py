"""How the `spool` command reads its arguments: global flags on either side of the command,
execution inputs (`--input`, `-i key=value`, `-i key:=json`), the naming rule, the default
project's precedence, and usage errors (exit 2) caught before any request. No server."""

from __future__ import annotations

import argparse
import io
import re
import shlex
from pathlib import Path
from typing import Any

import orjson
import pytest

from spool import config
from spool.cli import build_parser, main
from spool.cli_args import default_project, execution_input, is_id
from spool.cli_errors import UsageError


@pytest.fixture(autouse=True)
def _no_login(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No saved login, no platform: a command that reached the network would fail with 7."""
    monkeypatch.setenv("SPOOL_CONFIG", str(tmp_path / "config.json"))
    for name in ("SPOOL_URL", "SPOOL_TOKEN", "SPOOL_PROJECT"):
        monkeypatch.delenv(name, raising=False)


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["exec", "hello"], {"service": "hello", "function": "run", "json": False, "wait": False}),
        (["--json", "exec", "hello", "greet", "--wait", "--timeout", "5"],
         {"function": "greet", "json": True, "wait": True, "timeout": 5.0}),
        # the global flags also after the command, and before it they are kept
        (["exec", "hello", "--json", "--project", "demo"], {"json": True, "project": "demo"}),
        (["--project", "demo", "status", "hello"], {"project": "demo", "service": "hello"}),
        (["exec", "s", "-i", "a=1", "-i", "b:=2"], {"inputs": ["a=1", "b:=2"]}),
        (["logs", "-f", "--service", "s"], {"follow": True, "service": "s", "execution": None}),
        (["executions", "ls"], {"limit": 20, "status": None, "service": None}),
        (["executions", "ls", "--status", "failed", "--limit", "5", "--json"],
         {"status": "failed", "limit": 5, "json": True}),
        (["triggers", "create", "s", "--function", "f", "--action", "Created",
          "--action", "Updated", "--mode", "Always"],
         {"actions": ["Created", "Updated"], "mode": "Always", "cron": None}),
        (["login", "http://h:1", "--token-stdin"], {"url": "http://h:1", "token_stdin": True}),
        (["replay", "e1", "--src", "code", "--pdb"], {"src": "code", "pdb": True}),
        (["push"], {"path": ".", "name": None}),
        (["scale", "s", "--limit", "3"], {"service": "s", "limit": 3}),
    ],
)  # fmt: skip
def test_parsing(argv: list[str], expected: dict[str, Any]) -> None:
    args = vars(build_parser().parse_args(argv))
    assert {k: args[k] for k in expected} == expected


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["nope"],
        ["exec"],
        ["login", "--token", "t", "--token-stdin"],
        ["executions", "ls", "--status", "bogus"],
        ["executions", "ls", "--limit", "many"],
        ["triggers", "create", "s"],  # --function is required
        ["triggers", "create", "s", "--function", "f", "--mode", "Sometimes"],
        ["exec", "s", "--timeout", "soon"],
    ],
)
def test_argparse_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert "usage: spool" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["exec", "s", "--input", "[1]"], "--input: must be a JSON object"),
        (["exec", "s", "--input", "{nope"], "--input: not valid JSON"),
        (["exec", "s", "-i", "novalue"], "-i novalue: give key=value"),
        (["exec", "s", "-i", "n:={bad"], "-i n:={bad: not valid JSON"),
        (["logs"], "give an EXECUTION id, or --service SERVICE"),
        (["logs", "e1", "--service", "s"], "(not both)"),
        (["push", "examples/hello"], "no project: give --project NAME"),
        (["deploy"], "no project"),
        (
            ["triggers", "create", "s", "--function", "f", "--cron", "* * * * *", "--mode", "Once"],
            "--cron makes a cron trigger; --mode: only for event triggers",
        ),
        (["login", "ftp://x", "--token", "t"], "must start with http:// or https://"),
    ],
)
def test_mistakes_found_after_parsing_exit_2_before_any_request(
    argv: list[str], message: str
) -> None:
    code, out, err = _run(*argv)
    assert (code, out) == (2, "")
    assert err.startswith("spool: error: ")
    assert message in err
    assert err.count("\n") == 1  # one line


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("spool 0.")


def test_help_lists_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    assert "exit codes:" in text
    for line in ("3  not found", "4  authentication", "5  bad request", "6  timed out"):
        assert line in text


@pytest.mark.parametrize(
    ("given", "pairs", "expected"),
    [
        (None, [], {}),
        ('{"name": "world", "n": 2}', [], {"name": "world", "n": 2}),
        (None, ["name=world"], {"name": "world"}),
        (None, ["n=4"], {"n": "4"}),  # `=` is always a string
        (None, ["n:=4", "ok:=true", "cfg:={\"a\": [1]}"], {"n": 4, "ok": True, "cfg": {"a": [1]}}),
        (None, ["eq=a=b"], {"eq": "a=b"}),  # the first `=` splits
        (None, ["empty="], {"empty": ""}),
        ('{"name": "x", "n": 1}', ["name=y"], {"name": "y", "n": 1}),  # a pair wins
    ],
)  # fmt: skip
def test_execution_input(given: str | None, pairs: list[str], expected: dict[str, Any]) -> None:
    assert execution_input(given, pairs) == expected


@pytest.mark.parametrize("pair", ["=x", ":=1", "noequals"])
def test_execution_input_refuses_pairs_without_a_key(pair: str) -> None:
    with pytest.raises(UsageError, match="give key=value"):
        execution_input(None, [pair])


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("0123456789abcdef0123456789abcdef", True),
        ("hello", False),
        ("0123456789ABCDEF0123456789ABCDEF", False),  # names are lowercase, ids too
        ("0123456789abcdef", False),
    ],
)
def test_is_id(ref: str, expected: bool) -> None:
    assert is_id(ref) is expected


@pytest.mark.parametrize(
    ("given", "env", "stored", "expected"),
    [
        ("arg", {"SPOOL_PROJECT": "env"}, {"project": "file"}, "arg"),
        (None, {"SPOOL_PROJECT": "env"}, {"project": "file"}, "env"),
        (None, {}, {"project": "file"}, "file"),
        (None, {"SPOOL_PROJECT": ""}, {"project": "file"}, "file"),
        (None, {}, {"project": 3}, None),
        (None, {}, {}, None),
    ],
)
def test_default_project_precedence(
    given: str | None, env: dict[str, str], stored: dict[str, Any], expected: str | None
) -> None:
    assert default_project(given, env, stored) == expected


def test_the_config_keeps_the_default_project(tmp_path: Path) -> None:
    path = tmp_path / "spool" / "config.json"
    config.save("http://h:1/", "tok", path, project="p1")
    config.save("http://h:2", "tok2", path)  # a later login keeps it
    assert orjson.loads(path.read_bytes()) == {
        "url": "http://h:2",
        "token": "tok2",
        "project": "p1",
    }


DOCS = Path(__file__).resolve().parents[3] / "docs" / "cli.md"
SHELL_BLOCK = re.compile(r"^```sh\n(?P<body>.*?)^```$", re.MULTILINE | re.DOTALL)
OPERATORS = {"&&", "||", "|", ";", "<", ">", "&"}


def documented_commands(text: str) -> list[list[str]]:
    """Pure: each `spool ...` command of the ```sh blocks, cut at shell operators and
    comments (`spool use demo && spool ls < file | jq` gives two commands)."""
    found = []
    for block in SHELL_BLOCK.finditer(text):
        for line in block.group("body").splitlines():
            lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
            lexer.whitespace_split, lexer.commenters = True, "#"
            segment: list[str] = []
            for token in [*lexer, ";"]:
                if token not in OPERATORS:
                    segment.append(token)
                    continue
                if segment[:1] == ["spool"]:
                    found.append(segment)
                segment = ["<file>"] if token in ("<", ">") else []  # not a command
    return found


def test_documented_commands_are_cut_at_shell_operators() -> None:
    text = "```sh\nspool a --x 'b c' && spool d < f # note\nls | spool e\n```\n"
    expected = [["spool", "a", "--x", "b c"], ["spool", "d"], ["spool", "e"]]
    assert documented_commands(text) == expected


@pytest.mark.parametrize(
    "argv", documented_commands(DOCS.read_text()), ids=lambda argv: " ".join(argv)[:60]
)
def test_every_documented_command_parses(argv: list[str]) -> None:
    build_parser().parse_args(argv[1:])


def test_every_command_is_documented() -> None:
    text = DOCS.read_text()
    (commands,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    for name in commands.choices:
        assert f"`spool {name}" in text, name
