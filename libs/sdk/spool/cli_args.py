"""How the `spool` command reads what it is given: execution inputs, and which project and
service a name means.

Naming rule. `SERVICE` (and `--project`) is an id when it is 32 hex digits, as every Spool id
is; anything else is a name. A service name is looked up in the project chosen by
`--project`, else `$SPOOL_PROJECT`, else the config's `project` (set by `spool login
--project` or `spool use`), else in every project the token can see (then it must be unique).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from spool import config
from spool.cli_errors import UsageError
from spool.client import Client
from spool.errors import Detail, NotFound
from spool.project import Project
from spool.service import Service

ENV_PROJECT = "SPOOL_PROJECT"
CONFIG_PROJECT = "project"
_ID = re.compile(r"[0-9a-f]{32}")


def is_id(ref: str) -> bool:
    """Pure: whether a reference is an id (32 lowercase hex digits) rather than a name."""
    return _ID.fullmatch(ref) is not None


def json_value(text: str, what: str) -> Any:
    """Pure: parsed JSON, or a UsageError naming the option."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as e:
        raise UsageError(f"{what}: not valid JSON ({e})") from None


def json_object(text: str, what: str) -> dict[str, Any]:
    value = json_value(text, what)
    if not isinstance(value, dict):
        raise UsageError(f'{what}: must be a JSON object, like \'{{"name": "world"}}\'')
    return value


def execution_input(given: str | None, pairs: Sequence[str]) -> dict[str, Any]:
    """Pure: the input from `--input JSON` and `-i` pairs (httpie's forms: `key=text` is a
    string, `key:=json` a JSON value); a pair wins over the same key in --input."""
    found = json_object(given, "--input") if given is not None else {}
    for pair in pairs:
        key, raw, value = _pair(pair)
        found[key] = json_value(value, f"-i {pair}") if raw else value
    return found


def _pair(pair: str) -> tuple[str, bool, str]:
    """`key=text` -> (key, False, text); `key:=json` -> (key, True, json)."""
    key, sep, value = pair.partition("=")
    if not sep or not key.rstrip(":"):
        raise UsageError(f"-i {pair}: give key=value (a string) or key:=json (any JSON value)")
    if key.endswith(":"):
        return key[:-1], True, value
    return key, False, value


def default_project(
    given: str | None, env: Mapping[str, str], stored: Mapping[str, Any]
) -> str | None:
    """Pure: the project to work in: --project, else $SPOOL_PROJECT, else the config's."""
    saved = stored.get(CONFIG_PROJECT)
    return given or env.get(ENV_PROJECT) or (saved if isinstance(saved, str) and saved else None)


def stored_settings() -> dict[str, Any]:
    """The config file's settings ({} if there is none)."""
    import os

    return config.load(config.config_path(os.environ, Path.home()))


def project_id(client: Client, ref: str) -> str:
    """The id of the project an id or name refers to (an id is taken as it is: the server
    answers 404 for one it does not know)."""
    return ref if is_id(ref) else find_project(client, ref).id


def find_project(client: Client, ref: str) -> Project:
    if is_id(ref):
        return client.projects.get(project_id=ref)
    return client.projects.get(project_name=ref)


def find_service(client: Client, ref: str, project: str | None) -> Service:
    """The service an id or name refers to (see the module's naming rule)."""
    if is_id(ref):
        return client.services.get(service_id=ref)
    scope = project_id(client, project) if project else None
    found = client.services.list(project_id=scope, name=ref)
    if not found:
        where = f" in project {project}" if project else ""
        raise NotFound(
            f"no service named '{ref}'{where}", details=(Detail("service", "no such service"),)
        )
    if len(found) > 1:
        raise UsageError(
            f"{len(found)} services are named '{ref}' in the projects this token can see: "
            "give --project (or its id)"
        )
    return found[0]


def need_project(project: str | None) -> str:
    if not project:
        raise UsageError(
            "no project: give --project NAME, set $SPOOL_PROJECT, or run `spool use PROJECT`"
        )
    return project
