"""What every `spool` command is handed: where to write, in which mode, the project to work
in, and the SDK client (made on first use, so `spool --help` and usage errors never need a
config)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any

from spool.cli_args import default_project, need_project, stored_settings
from spool.cli_format import json_text
from spool.client import Client


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Context:
    """`json`: print machine-readable JSON on stdout and nothing else there; notes for
    people go to stderr, and only in human mode."""

    json: bool
    stdout: IO[str]
    stderr: IO[str]
    project_arg: str | None = None
    clock: Callable[[], datetime] = _now
    _client: Client | None = field(default=None, repr=False)

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client()
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    @property
    def project(self) -> str | None:
        """--project, else $SPOOL_PROJECT, else the config's default project."""
        return default_project(self.project_arg, os.environ, stored_settings())

    def need_project(self) -> str:
        return need_project(self.project)

    def emit(self, data: Any, text: str) -> None:
        """The command's result: `data` as JSON with --json, else `text` for people."""
        self.stdout.write((json_text(data) if self.json else text) + "\n")
        self.stdout.flush()

    def note(self, text: str) -> None:
        """A remark for people (what was done, what to try): stderr, human mode only."""
        if not self.json:
            self.stderr.write(text + "\n")
            self.stderr.flush()
