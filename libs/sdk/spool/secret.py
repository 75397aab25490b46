"""A project's secrets: `project.secrets.create("API_KEY", "s3cret")`. Write-only: every
answer is the secret's metadata (name, key id, who and when), never its value. A service
names the secrets it gets as environment variables (`package.deploy(secrets=["API_KEY"])`).
"""

from __future__ import annotations

import builtins
from datetime import datetime

from spool.client import Bound, Client
from spool_common.models import WireModel


class Secret(WireModel):
    """A secret's metadata. There is no `value`: the API never answers one."""

    project_id: str
    name: str
    key_id: str
    creator: str | None = None
    updated_by: str | None = None
    created_at: datetime
    updated_at: datetime


class Secrets(Bound):
    def __init__(self, client: Client | None, project_id: str) -> None:
        super().__init__(client)
        self._path = f"/projects/{project_id}/secrets"

    def create(self, name: str, value: str) -> Secret:
        """Store a new secret (409 if the name is taken; `update` replaces a value)."""
        return Secret.model_validate(self.client.post(self._path, {"name": name, "value": value}))

    def list(self) -> builtins.list[Secret]:
        return [Secret.model_validate(s) for s in self.client.get(self._path)]

    def get(self, name: str) -> Secret:
        return Secret.model_validate(self.client.get(f"{self._path}/{name}"))

    def update(self, name: str, value: str) -> Secret:
        """Replace the value. Replicas started afterwards get it; running ones keep theirs."""
        return Secret.model_validate(self.client.put(f"{self._path}/{name}", {"value": value}))

    def delete(self, name: str) -> None:
        """409, naming them, while live services still list the secret."""
        self.client.delete(f"{self._path}/{name}")
