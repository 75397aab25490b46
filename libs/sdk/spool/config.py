"""Where the SDK finds the gateway's URL and a token, and the file `spool login` writes.

Each of the two is taken from the first place that has it: the arguments of `spool.login`
(or `spool.Client`), then `SPOOL_URL` / `SPOOL_TOKEN`, then the config file
(`$SPOOL_CONFIG`, else `$XDG_CONFIG_HOME/spool/config.json`, else
`~/.config/spool/config.json`). So a CI job can override the URL of a developer's saved login
without touching the file. The file holds a bearer token: it is written with mode 0600, through
a temporary file renamed into place, so it is never readable by others, not even briefly.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from spool.errors import ConfigError

ENV_URL = "SPOOL_URL"
ENV_TOKEN = "SPOOL_TOKEN"  # noqa: S105  (the variable's name, not a token)
ENV_CONFIG = "SPOOL_CONFIG"
API_PREFIX = "/api/v1"
FILE_MODE = 0o600
DIR_MODE = 0o700


@dataclass(frozen=True)
class Credentials:
    """The gateway's base URL (without `/api/v1`) and the bearer token to send it."""

    url: str
    token: str

    def __repr__(self) -> str:  # never print the token
        return f"Credentials(url={self.url!r}, token='***')"


def config_path(env: Mapping[str, str], home: Path) -> Path:
    """The config file for this environment."""
    if env.get(ENV_CONFIG):
        return Path(env[ENV_CONFIG]).expanduser()
    base = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else home / ".config"
    return base / "spool" / "config.json"


def normalise_url(url: str) -> str:
    """`http://host:8080/`, `http://host:8080/api/v1` -> `http://host:8080`."""
    text = url.strip().rstrip("/")
    text = text.removesuffix(API_PREFIX).rstrip("/")
    if not text.startswith(("http://", "https://")):
        raise ConfigError(f"the Spool URL {url!r} must start with http:// or https://")
    return text


def choose(
    url: str | None,
    token: str | None,
    env: Mapping[str, str],
    stored: Mapping[str, Any],
    path: Path,
) -> Credentials:
    """Pure: the credentials by precedence (argument, environment, file), or a `ConfigError`
    naming every place that was looked at for what is missing."""
    found_url = url or env.get(ENV_URL) or _text(stored.get("url"))
    found_token = token or env.get(ENV_TOKEN) or _text(stored.get("token"))
    missing = [
        f"no Spool {what}: pass {arg}=..., set {var}, or run `spool login` (config file {path})"
        for what, arg, var, value in (
            ("URL", "url", ENV_URL, found_url),
            ("token", "token", ENV_TOKEN, found_token),
        )
        if not value
    ]
    if not (found_url and found_token):
        raise ConfigError("; ".join(missing))
    return Credentials(normalise_url(found_url), found_token.strip())


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def load(path: Path) -> dict[str, Any]:
    """The saved settings; {} when there is no file."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise ConfigError(f"cannot read the Spool config file {path}: {e.strerror}") from e
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise ConfigError(f"the Spool config file {path} is not valid JSON ({e})") from e
    if not isinstance(data, dict):
        raise ConfigError(f"the Spool config file {path} must hold a JSON object")
    return data


def resolve(
    url: str | None = None,
    token: str | None = None,
    *,
    env: Mapping[str, str] | None = None,
    path: Path | None = None,
) -> Credentials:
    """The credentials to use now; the file is read only if an argument is missing."""
    environment = os.environ if env is None else env
    where = path or config_path(environment, Path.home())
    stored = {} if url and token else load(where)
    return choose(url, token, environment, stored, where)


def save(url: str, token: str, path: Path | None = None, *, project: str | None = None) -> Path:
    """Write the URL and token (keeping any other saved keys) with mode 0600; returns the
    file's path. What `spool login` calls. `project`: also save the `spool` command's
    default project (its id)."""
    where = path or config_path(os.environ, Path.home())
    if not token.strip():
        raise ConfigError("the token to save is empty")
    settings = {**load(where), "url": normalise_url(url), "token": token.strip()}
    if project is not None:
        settings["project"] = project
    where.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    _write_private(where, orjson.dumps(settings, option=orjson.OPT_INDENT_2) + b"\n")
    return where


def _write_private(path: Path, data: bytes) -> None:
    """Replace `path` atomically with `data`, readable by the owner only."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
