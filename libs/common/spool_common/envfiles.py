"""Environment variables for a function: reading a dotenv file, and checking a mapping.

Pure: the caller reads the file; this module only sees its text. The format is the one MLRun's
`set_envs(file_path=...)` reads (python-dotenv):

    # a comment
    export NAME=value          # "export " is optional; an inline " #" comment is dropped
    GREETING = "hello\\nworld"  # double quotes: \\n \\t \\r \\" \\\\ escapes
    RAW='no $escapes\\n here'   # single quotes: literal

A quoted value must close on the same line (write a newline as `\\n` in double quotes).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Final

from spool_common.errors import FieldError, ValidationFailure, raise_if_any

NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
RESERVED_PREFIX: Final = "SPOOL_"
MAX_VARIABLES: Final = 256
MAX_TOTAL_BYTES: Final = 128 * 1024

_NAME_RULE: Final = "use letters, digits and _, not starting with a digit"
# Only \n, \r\n and \r end a line (as in python-dotenv); str.splitlines would also split a
# value on \x0b, \x1c, \u2028 and friends.
_LINE_BREAK: Final = re.compile(r"\r\n|\r|\n")
_EXPORT: Final = re.compile(r"export[ \t]+")
_INLINE_COMMENT: Final = re.compile(r"\s+#.*")
_ESCAPES: Final = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}


class _LineError(Exception):
    """A problem on the line being read; `parse_env_file` adds the line number and field."""


def parse_env_file(text: str, *, field: str) -> dict[str, str]:
    """`KEY=VALUE` pairs in `text`, in file order. Names are checked; values are not."""
    env: dict[str, str] = {}
    first_seen: dict[str, int] = {}
    for number, line in _content_lines(text):
        try:
            key, value = _parse_line(line)
            if key in first_seen:
                raise _LineError(f"{key} is already set on line {first_seen[key]}")
        except _LineError as e:
            raise ValidationFailure.of(field, f"line {number}: {e}") from None
        env[key] = value
        first_seen[key] = number
    return env


def _content_lines(text: str) -> Iterator[tuple[int, str]]:
    lines = _LINE_BREAK.split(text.removeprefix("\ufeff"))
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            yield number, stripped


def _parse_line(line: str) -> tuple[str, str]:
    export = _EXPORT.match(line)
    body = line[export.end() :] if export else line
    if body.startswith("="):  # "export = 1" sets a variable named export
        body = line
    key, equals, raw = body.partition("=")
    if not equals:
        raise _LineError(f'expected NAME=value, found "{_shorten(line)}"')
    key = key.strip()
    if NAME.fullmatch(key) is None:
        raise _LineError(f'"{_shorten(key)}" is not a valid variable name; {_NAME_RULE}')
    return key, _parse_value(raw.lstrip())


def _parse_value(raw: str) -> str:
    if raw.startswith('"'):
        value, rest = _double_quoted(raw[1:])
    elif raw.startswith("'"):
        value, closing, rest = raw[1:].partition("'")
        if not closing:
            raise _LineError("the single quote is never closed")
    else:
        return _INLINE_COMMENT.sub("", raw).rstrip()
    rest = rest.strip()
    if rest and not rest.startswith("#"):
        raise _LineError(f'unexpected "{_shorten(rest)}" after the closing quote')
    return value


def _double_quoted(text: str) -> tuple[str, str]:
    """The unescaped value up to the closing quote, and what follows that quote."""
    out: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char == '"':
            return "".join(out), text[index + 1 :]
        if char == "\\" and index + 1 < len(text):
            following = text[index + 1]
            out.append(_ESCAPES.get(following, "\\" + following))
            index += 2
            continue
        out.append(char)
        index += 1
    raise _LineError("the double quote is never closed")


def _shorten(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def validate_env(env: Mapping[str, object], *, field: str) -> dict[str, str]:
    """`env` as a `dict[str, str]`, or a `ValidationFailure` listing every problem.

    Names follow `NAME` and must not start with `SPOOL_`; values must be strings. The total size
    counts the UTF-8 bytes of every `NAME=value`.
    """
    errors = [error for key, value in env.items() for error in _check_variable(key, value, field)]
    errors.extend(_check_totals(env, field))
    raise_if_any(errors)
    return {key: value for key, value in env.items() if isinstance(value, str)}


def _check_variable(key: object, value: object, field: str) -> Iterator[FieldError]:
    where = f"{field}.{key}"
    if not isinstance(key, str) or NAME.fullmatch(key) is None:
        yield FieldError(
            where, f'"{_shorten(str(key))}" is not a valid variable name; {_NAME_RULE}'
        )
    elif key.startswith(RESERVED_PREFIX):
        yield FieldError(where, f"names starting with {RESERVED_PREFIX} are reserved for Spool")
    problem = _value_problem(value)
    if problem:
        yield FieldError(where, problem)


def _value_problem(value: object) -> str | None:
    if isinstance(value, str):
        return _text_problem(value)
    if value is None:
        return 'must be a string; write "" for an empty value'
    if isinstance(value, bool):
        return f'must be a string; quote it: "{str(value).lower()}"'
    if isinstance(value, int | float):
        return f'must be a string; quote it: "{value}"'
    return f"must be a string, not {type(value).__name__}"


def _text_problem(value: str) -> str | None:
    if "\x00" in value:
        return "must not contain a NUL character"
    try:
        value.encode()
    except UnicodeEncodeError:
        return "must be valid Unicode text (it holds a lone surrogate)"
    return None


def _check_totals(env: Mapping[str, object], field: str) -> Iterator[FieldError]:
    if len(env) > MAX_VARIABLES:
        yield FieldError(field, f"at most {MAX_VARIABLES} variables, found {len(env)}")
    size = sum(
        len(f"{key}={value}".encode(errors="surrogatepass"))
        for key, value in env.items()
        if isinstance(value, str)
    )
    if size > MAX_TOTAL_BYTES:
        yield FieldError(
            field, f"the variables take {size} bytes; the limit is {MAX_TOTAL_BYTES} (128 KiB)"
        )
