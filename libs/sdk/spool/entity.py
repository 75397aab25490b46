"""What every SDK entity shares: the client it came from, the JSON the server last sent, and
the merge patch that carries the user's changes back.

Entities subclass the wire models of `spool_common.models` (the gateway's own), so their
fields, types and defaults are the API's, and `service.runtime.concurrency = 5` is a typed
assignment. An update sends only what changed since the server's answer (`merge_diff`), so
fields the server owns and fields someone else changed meanwhile are never written back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Self

from pydantic import PrivateAttr

from spool.client import Client
from spool_common.models_base import WireModel

_SHOWN = ("id", "name", "version", "status")


def merge_diff(
    old: dict[str, Any], new: dict[str, Any], into: Callable[[str], bool], prefix: str = ""
) -> dict[str, Any]:
    """Pure: the JSON merge patch (RFC 7386) turning `old` into `new`. Objects at paths where
    `into(path)` is true are diffed key by key (a removed key becomes null); every other
    changed value is sent whole, because the server replaces it whole."""
    patch: dict[str, Any] = {}
    for key in new.keys() | old.keys():
        path = f"{prefix}{key}"
        before, after = old.get(key), new.get(key)
        if before == after:
            continue
        if isinstance(before, dict) and isinstance(after, dict) and into(path):
            patch[key] = merge_diff(before, after, into, f"{path}.")
        else:
            patch[key] = after
    return patch


class Entity(WireModel):
    """An API object with its client. `to_json()` is its camelCase JSON."""

    _client: Client | None = PrivateAttr(default=None)
    _origin: dict[str, Any] = PrivateAttr(default_factory=dict)

    @classmethod
    def from_json(cls, client: Client, data: Any) -> Self:
        entity = cls.model_validate(data)
        entity._bind(client)
        return entity

    def _bind(self, client: Client) -> None:
        self._client = client
        self._origin = self.to_wire()

    @property
    def client(self) -> Client:
        if self._client is None:
            raise RuntimeError(
                f"this {type(self).__name__} was built by hand; get it through the SDK "
                "(e.g. spool.services.get) to call the API with it"
            )
        return self._client

    def to_json(self) -> dict[str, Any]:
        return self.to_wire()

    @classmethod
    def _merged(cls, path: str) -> bool:
        """Whether the server merges the object at `path` key by key on an update (else it
        replaces it whole). Subclasses name theirs."""
        return False

    def changes(self) -> dict[str, Any]:
        """What `update()` would send: the merge patch of the changes made since the
        server's last answer."""
        return merge_diff(self._origin, self.to_wire(), self._merged)

    def _refresh(self, data: Any) -> Self:
        """Take the server's newer JSON in place, so references the user holds stay live."""
        fresh = type(self).model_validate(data)
        for name in type(self).model_fields:
            setattr(self, name, getattr(fresh, name))
        self._origin = self.to_wire()
        return self

    def __repr__(self) -> str:
        fields = type(self).model_fields
        shown = [f"{k}={getattr(self, k)!r}" for k in _SHOWN if k in fields and getattr(self, k)]
        return f"{type(self).__name__}({', '.join(shown)})"

    __str__ = __repr__
