"""Where the SDK finds its URL and token, and the config file `spool login` writes."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import orjson
import pytest

import spool
from spool import config

FILE = Path("/nowhere/config.json")
STORED = {"url": "http://file:8080", "token": "file-token"}
ENV = {"SPOOL_URL": "http://env:8080", "SPOOL_TOKEN": "env-token"}


@pytest.mark.parametrize(
    ("url", "token", "env", "stored", "expected"),
    [
        ("http://arg:1", "arg-token", ENV, STORED, ("http://arg:1", "arg-token")),
        (None, None, ENV, STORED, ("http://env:8080", "env-token")),
        (None, None, {}, STORED, ("http://file:8080", "file-token")),
        # each value on its own: the argument's URL with the environment's token...
        ("http://arg:1", None, ENV, STORED, ("http://arg:1", "env-token")),
        # ...the environment's URL over a saved login's, keeping the saved token
        (None, None, {"SPOOL_URL": "http://ci:80"}, STORED, ("http://ci:80", "file-token")),
        (None, "t", {}, {"url": "http://x/api/v1/"}, ("http://x", "t")),
        (
            None,
            None,
            {"SPOOL_URL": "", "SPOOL_TOKEN": ""},
            STORED,
            ("http://file:8080", "file-token"),
        ),
    ],
)
def test_arguments_then_environment_then_file(
    url: str | None,
    token: str | None,
    env: dict[str, str],
    stored: dict[str, Any],
    expected: tuple[str, str],
) -> None:
    found = config.choose(url, token, env, stored, FILE)
    assert (found.url, found.token) == expected


@pytest.mark.parametrize(
    ("env", "stored", "named", "not_named"),
    [
        ({}, {}, ["no Spool URL", "no Spool token"], []),
        ({"SPOOL_URL": "http://x"}, {}, ["no Spool token", "SPOOL_TOKEN"], ["no Spool URL"]),
        ({}, {"token": "t"}, ["no Spool URL", "SPOOL_URL"], ["no Spool token"]),
        ({}, {"url": 5, "token": "t"}, ["no Spool URL"], []),
    ],
)
def test_a_missing_value_is_named_with_where_to_set_it(
    env: dict[str, str], stored: dict[str, Any], named: list[str], not_named: list[str]
) -> None:
    with pytest.raises(spool.ConfigError) as caught:
        config.choose(None, None, env, stored, FILE)
    message = str(caught.value)
    for text in [*named, str(FILE), "spool login"]:
        assert text in message
    for text in not_named:
        assert text not in message


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://h:8080", "http://h:8080"),
        (" http://h:8080/ ", "http://h:8080"),
        ("https://h/api/v1", "https://h"),
        ("https://h/api/v1/", "https://h"),
        ("http://h/prefix", "http://h/prefix"),
    ],
)
def test_urls_are_normalised(given: str, expected: str) -> None:
    assert config.normalise_url(given) == expected


def test_a_url_without_scheme_is_refused() -> None:
    with pytest.raises(spool.ConfigError, match="must start with http"):
        config.normalise_url("localhost:8080")


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"SPOOL_CONFIG": "/etc/spool.json"}, "/etc/spool.json"),
        ({"XDG_CONFIG_HOME": "/xdg"}, "/xdg/spool/config.json"),
        ({}, "/home/ada/.config/spool/config.json"),
        ({"SPOOL_CONFIG": "", "XDG_CONFIG_HOME": ""}, "/home/ada/.config/spool/config.json"),
    ],
)
def test_config_path(env: dict[str, str], expected: str) -> None:
    assert config.config_path(env, Path("/home/ada")) == Path(expected)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_save_writes_a_private_file_that_resolve_reads(tmp_path: Path) -> None:
    path = tmp_path / "new" / "spool" / "config.json"
    assert config.save("http://h:8080/api/v1", " tok ", path) == path
    assert _mode(path) == 0o600
    assert _mode(path.parent) == 0o700
    assert orjson.loads(path.read_bytes()) == {"url": "http://h:8080", "token": "tok"}
    found = config.resolve(env={}, path=path)
    assert (found.url, found.token) == ("http://h:8080", "tok")
    assert [p.name for p in path.parent.iterdir()] == ["config.json"]  # no temporary left


def test_save_makes_an_existing_open_file_private_and_keeps_other_keys(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_bytes(orjson.dumps({"url": "http://old", "token": "old", "project": "p1"}))
    os.chmod(path, 0o644)
    config.save("http://new", "new", path)
    assert _mode(path) == 0o600
    assert orjson.loads(path.read_bytes()) == {
        "url": "http://new",
        "token": "new",
        "project": "p1",
    }


def test_save_refuses_an_empty_token(tmp_path: Path) -> None:
    with pytest.raises(spool.ConfigError, match="empty"):
        config.save("http://h", "  ", tmp_path / "config.json")
    assert not (tmp_path / "config.json").exists()


@pytest.mark.parametrize(
    ("content", "reason"), [(b"{nope", "not valid JSON"), (b"[1]", "JSON object")]
)
def test_a_broken_file_is_named(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "config.json"
    path.write_bytes(content)
    with pytest.raises(spool.ConfigError) as caught:
        config.resolve(env={}, path=path)
    assert str(path) in str(caught.value)
    assert reason in str(caught.value)


def test_the_file_is_not_read_when_both_are_given(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_bytes(b"{broken")
    found = config.resolve("http://h", "t", env={}, path=path)
    assert found.url == "http://h"


def test_the_token_is_never_printed() -> None:
    credentials = config.Credentials("http://h", "secret-token")
    assert "secret-token" not in repr(credentials)


def test_login_uses_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SPOOL_CONFIG", str(tmp_path / "absent.json"))
    monkeypatch.setenv("SPOOL_URL", "http://env-host:1/")
    monkeypatch.setenv("SPOOL_TOKEN", "env-token")
    client = spool.login()
    try:
        assert client.url == "http://env-host:1"
        assert spool.client.default_client() is client
        assert spool.login(url="http://other:2").url == "http://other:2"
    finally:
        spool.client.default_client().close()
        monkeypatch.setattr(spool.client, "_default", None)


def test_login_without_anything_names_what_is_missing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SPOOL_CONFIG", str(tmp_path / "absent.json"))
    monkeypatch.delenv("SPOOL_URL", raising=False)
    monkeypatch.delenv("SPOOL_TOKEN", raising=False)
    with pytest.raises(spool.ConfigError, match="no Spool token"):
        spool.login(url="http://h")
