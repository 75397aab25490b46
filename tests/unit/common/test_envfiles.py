"""Table tests for dotenv parsing and environment-variable checks."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spool_common.envfiles import MAX_TOTAL_BYTES, MAX_VARIABLES, parse_env_file, validate_env
from spool_common.errors import ValidationFailure

FIELD = "runtime.envFile"


@pytest.mark.parametrize(
    ("text", "env"),
    [
        pytest.param("A=1", {"A": "1"}, id="one"),
        pytest.param("A=1\nB=two\n", {"A": "1", "B": "two"}, id="two"),
        pytest.param("A=1\r\nB=2\r\n", {"A": "1", "B": "2"}, id="crlf"),
        pytest.param("\n  \n# note\n  # indented note\nA=1\n", {"A": "1"}, id="blank-and-comments"),
        pytest.param("export A=1", {"A": "1"}, id="export"),
        pytest.param("export\tA=1", {"A": "1"}, id="export-tab"),
        pytest.param("export=1", {"export": "1"}, id="variable-named-export"),
        pytest.param("export = 1", {"export": "1"}, id="variable-named-export-spaced"),
        pytest.param("A = 1", {"A": "1"}, id="spaces-around-equals"),
        pytest.param("  A\t=\t1  ", {"A": "1"}, id="tabs-and-padding"),
        pytest.param("A=", {"A": ""}, id="empty"),
        pytest.param("A=1 # the answer", {"A": "1"}, id="inline-comment"),
        pytest.param("A=1#2", {"A": "1#2"}, id="hash-inside-value"),
        pytest.param("URL=http://h/p?q=1&r=2", {"URL": "http://h/p?q=1&r=2"}, id="equals-in-value"),
        pytest.param("A=it's", {"A": "it's"}, id="quote-inside-unquoted"),
        pytest.param('A="a b"', {"A": "a b"}, id="double-quoted"),
        pytest.param('A="1 # kept"', {"A": "1 # kept"}, id="hash-in-quotes"),
        pytest.param('A="x" # note', {"A": "x"}, id="comment-after-quotes"),
        pytest.param(r'A="l1\nl2"', {"A": "l1\nl2"}, id="newline-escape"),
        pytest.param(r'A="say \"hi\""', {"A": 'say "hi"'}, id="quote-escape"),
        pytest.param(r'A="back\\slash"', {"A": "back\\slash"}, id="backslash-escape"),
        pytest.param(r'A="c:\dir"', {"A": "c:\\dir"}, id="unknown-escape-kept"),
        pytest.param(r"A='raw\n $X'", {"A": "raw\\n $X"}, id="single-quoted-literal"),
        pytest.param("A=''", {"A": ""}, id="empty-single-quotes"),
        pytest.param('A=""', {"A": ""}, id="empty-double-quotes"),
        pytest.param("\ufeffA=1", {"A": "1"}, id="byte-order-mark"),
        pytest.param("_a9=x", {"_a9": "x"}, id="underscore-name"),
        pytest.param("A='x\u2028y'", {"A": "x\u2028y"}, id="unicode-line-separator-in-value"),
        pytest.param("", {}, id="empty-file"),
    ],
)
def test_parse_env_file(text: str, env: dict[str, str]) -> None:
    assert parse_env_file(text, field=FIELD) == env


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        pytest.param("JUSTANAME", 'line 1: expected NAME=value, found "JUSTANAME"', id="no-equals"),
        pytest.param("A=1\n\n# c\nB", 'line 4: expected NAME=value, found "B"', id="line-number"),
        pytest.param("1A=x", 'line 1: "1A" is not a valid variable name', id="leading-digit"),
        pytest.param("MY-VAR=x", 'line 1: "MY-VAR" is not a valid variable name', id="dash"),
        pytest.param("=x", 'line 1: "" is not a valid variable name', id="no-name"),
        pytest.param("A B=x", 'line 1: "A B" is not a valid variable name', id="space-in-name"),
        pytest.param('A="open', "line 1: the double quote is never closed", id="double-open"),
        pytest.param('A="ends\\"', "line 1: the double quote is never closed", id="escaped-close"),
        pytest.param("A='open", "line 1: the single quote is never closed", id="single-open"),
        pytest.param('A="x"y', 'line 1: unexpected "y" after the closing quote', id="after-quote"),
        pytest.param("A=1\nB=2\nA=3", "line 3: A is already set on line 1", id="duplicate"),
        pytest.param("A=1\nexport A=2", "line 2: A is already set on line 1", id="dup-export"),
    ],
)
def test_parse_env_file_rejects(text: str, reason: str) -> None:
    with pytest.raises(ValidationFailure) as caught:
        parse_env_file(text, field=FIELD)
    [error] = caught.value.errors
    assert error.field == FIELD
    assert error.reason.startswith(reason)


def test_multi_line_quoted_value_is_refused_with_its_line() -> None:
    with pytest.raises(ValidationFailure, match="line 2: the double quote is never closed"):
        parse_env_file('A=1\nB="first\nsecond"', field=FIELD)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        pytest.param({}, {}, id="empty"),
        pytest.param({"A": "1", "b_2": ""}, {"A": "1", "b_2": ""}, id="strings"),
        pytest.param({"SPOOLX": "1"}, {"SPOOLX": "1"}, id="spool-without-underscore"),
        pytest.param({"spool_x": "1"}, {"spool_x": "1"}, id="lowercase-spool"),
    ],
)
def test_validate_env_accepts(env: dict[str, object], expected: dict[str, str]) -> None:
    assert validate_env(env, field="env") == expected


@pytest.mark.parametrize(
    ("env", "errors"),
    [
        pytest.param({"PORT": 8080}, [("env.PORT", 'quote it: "8080"')], id="int"),
        pytest.param({"RATE": 0.5}, [("env.RATE", 'quote it: "0.5"')], id="float"),
        pytest.param({"DEBUG": True}, [("env.DEBUG", 'quote it: "true"')], id="bool"),
        pytest.param({"X": None}, [("env.X", 'write "" for an empty value')], id="none"),
        pytest.param({"X": ["a"]}, [("env.X", "must be a string, not list")], id="list"),
        pytest.param({"X": "a\x00b"}, [("env.X", "NUL character")], id="nul"),
        pytest.param({"X": "\ud800"}, [("env.X", "lone surrogate")], id="surrogate"),
        pytest.param({"1X": "a"}, [("env.1X", '"1X" is not a valid variable name')], id="name"),
        pytest.param({"SPOOL_TOKEN": "a"}, [("env.SPOOL_TOKEN", "reserved for Spool")], id="spool"),
        pytest.param(
            {"SPOOL_X": 1, "A-B": "x", "OK": "y"},
            [
                ("env.SPOOL_X", "reserved for Spool"),
                ("env.SPOOL_X", 'quote it: "1"'),
                ("env.A-B", "not a valid variable name"),
            ],
            id="every-problem-reported",
        ),
    ],
)
def test_validate_env_rejects(env: dict[str, object], errors: list[tuple[str, str]]) -> None:
    with pytest.raises(ValidationFailure) as caught:
        validate_env(env, field="env")
    got = caught.value.errors
    assert [e.field for e in got] == [field for field, _ in errors]
    for error, (_, reason) in zip(got, errors, strict=True):
        assert reason in error.reason


@pytest.mark.parametrize(
    ("count", "ok"),
    [
        pytest.param(MAX_VARIABLES, True, id="at-limit"),
        pytest.param(MAX_VARIABLES + 1, False, id="over"),
    ],
)
def test_variable_count_limit(count: int, ok: bool) -> None:
    env = {f"V{i}": "x" for i in range(count)}
    if ok:
        assert len(validate_env(env, field="env")) == count
        return
    with pytest.raises(ValidationFailure, match=r"env: at most 256 variables, found 257"):
        validate_env(env, field="env")


@pytest.mark.parametrize(
    ("extra", "ok"),
    [pytest.param(0, True, id="at-limit"), pytest.param(1, False, id="one-byte-over")],
)
def test_total_size_limit(extra: int, ok: bool) -> None:
    # "BIG=" is 4 bytes; "é" is 2 bytes in UTF-8, so the size counts bytes, not characters.
    value = "é" * ((MAX_TOTAL_BYTES - 4) // 2) + "x" * extra
    env = {"BIG": value}
    if ok:
        assert validate_env(env, field="env") == env
        return
    with pytest.raises(ValidationFailure, match=r"take 131073 bytes; the limit is 131072"):
        validate_env(env, field="env")


def _quote(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t") + '"'


_NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,20}", fullmatch=True)
_VALUES = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"))


@given(st.dictionaries(_NAMES, _VALUES, max_size=10), st.booleans())
def test_written_file_reads_back(env: dict[str, str], export: bool) -> None:
    prefix = "export " if export else ""
    text = "".join(f"{prefix}{key} = {_quote(value)}  # note\n" for key, value in env.items())
    assert parse_env_file(text, field=FIELD) == env
