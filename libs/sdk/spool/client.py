"""The one place the SDK speaks HTTP: `Client` wraps a synchronous `httpx.Client`, turns error
answers into `SpoolError`s, and retries refusals the gateway marks as safe to retry.

Retries. The gateway refuses new executions with 429 (the project's rate) or 503 (the
service's queue is full), always with `Retry-After`, and decides that before writing anything.
So any request answered 429 or 503 *with* `Retry-After` is sent again after that many seconds,
up to `RetryPolicy.attempts` times in all, unless the wait would exceed `max_wait` (then the
`RateLimited` / `Unavailable` is raised at once, so the caller decides). Nothing else is
retried: a timeout or a dropped connection may have come after the write.

`spool.login(...)` sets the default client the module-level repositories (`spool.packages`,
...) use; `spool.Client(url, token)` is a separate session for talking to another platform.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
import orjson

from spool import config
from spool.errors import SpoolConnectionError, from_response, parse_retry_after

if TYPE_CHECKING:
    from spool.event import Events
    from spool.execution import Executions
    from spool.package import Packages
    from spool.project import Projects
    from spool.service import Services
    from spool.trigger import Triggers
    from spool.user import Users

USER_AGENT = "spool-sdk/0.1.0"
DEFAULT_TIMEOUT = 30.0  # seconds per request; long-polls add their own wait to it
CONNECT_TIMEOUT = 10.0


@dataclass(frozen=True)
class RetryPolicy:
    """How often, and how long, to wait out 429/503 refusals that carry `Retry-After`."""

    attempts: int = 4
    max_wait: float = 60.0


def retry_wait(
    status: int, retry_after: str | None, attempt: int, policy: RetryPolicy
) -> float | None:
    """Pure: seconds to wait before sending attempt `attempt + 1`, or None to give up."""
    if status not in (429, 503) or attempt >= policy.attempts:
        return None
    seconds = parse_retry_after(retry_after)
    if seconds is None or seconds > policy.max_wait:
        return None
    return seconds


class Client:
    """A session with one Spool gateway. Thread-safe; close it (or use `with`) when done."""

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        retry: RetryPolicy = RetryPolicy(),
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        credentials = config.resolve(url, token)
        self.url = credentials.url
        self._retry = retry
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=credentials.url + config.API_PREFIX,
            headers={
                "Authorization": f"Bearer {credentials.token}",
                "User-Agent": USER_AGENT,
            },
            timeout=httpx.Timeout(timeout, connect=CONNECT_TIMEOUT),
            transport=transport,
        )

    def __repr__(self) -> str:
        return f"spool.Client(url={self.url!r})"

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        files: Mapping[str, tuple[str, bytes, str]] | None = None,
        data: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Send one API request (path under /api/v1) and answer its JSON (None for 204)."""
        content = None if json is None else orjson.dumps(json)
        headers = {} if content is None else {"Content-Type": "application/json"}
        query = {k: _param(v) for k, v in (params or {}).items() if v is not None}
        attempt = 0
        while True:
            attempt += 1
            response = self._send(
                method, path, content, headers, query, files, data, timeout=timeout
            )
            if response.is_success:
                return orjson.loads(response.content) if response.content else None
            retry_after = response.headers.get("Retry-After")
            wait = retry_wait(response.status_code, retry_after, attempt, self._retry)
            if wait is None:
                raise from_response(
                    response.status_code, response.content, retry_after, f"{method} {path}"
                )
            self._sleep(wait)

    def _send(
        self,
        method: str,
        path: str,
        content: bytes | None,
        headers: Mapping[str, str],
        query: Mapping[str, str],
        files: Mapping[str, tuple[str, bytes, str]] | None,
        data: Mapping[str, str] | None,
        *,
        timeout: float | None,
    ) -> httpx.Response:
        extra: dict[str, Any] = {}
        if timeout is not None:
            extra["timeout"] = httpx.Timeout(timeout, connect=CONNECT_TIMEOUT)
        try:
            return self._http.request(
                method,
                path,
                content=content,
                headers=headers,
                params=query,
                files=files,
                data=data,
                **extra,
            )
        except httpx.TransportError as e:
            raise SpoolConnectionError(
                f"cannot reach Spool at {self.url} ({method} {path}): {e or type(e).__name__}"
            ) from e

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, json: Any = None, **params: Any) -> Any:
        return self.request("POST", path, json=json, params=params)

    def patch(self, path: str, json: Any = None, **params: Any) -> Any:
        return self.request("PATCH", path, json=json, params=params)

    def put(self, path: str, json: Any = None, **params: Any) -> Any:
        return self.request("PUT", path, json=json, params=params)

    def delete(self, path: str, **params: Any) -> Any:
        return self.request("DELETE", path, params=params)

    # The repositories, bound to this client (imported here: they import this module).
    @property
    def projects(self) -> Projects:
        from spool.project import Projects

        return Projects(self)

    @property
    def packages(self) -> Packages:
        from spool.package import Packages

        return Packages(self)

    @property
    def services(self) -> Services:
        from spool.service import Services

        return Services(self)

    @property
    def executions(self) -> Executions:
        from spool.execution import Executions

        return Executions(self)

    @property
    def triggers(self) -> Triggers:
        from spool.trigger import Triggers

        return Triggers(self)

    @property
    def events(self) -> Events:
        from spool.event import Events

        return Events(self)

    @property
    def users(self) -> Users:
        from spool.user import Users

        return Users(self)


def _param(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


_default: Client | None = None
_lock = threading.Lock()


def login(token: str | None = None, url: str | None = None) -> Client:
    """Use this token and URL (each falling back to the environment, then the config file)
    for `spool.projects`, `spool.packages` and the rest. Nothing is sent yet."""
    global _default
    client = Client(url, token)
    with _lock:
        previous, _default = _default, client
    if previous is not None:
        previous.close()
    return client


def default_client() -> Client:
    """The client `spool.login` set, or one from the environment and config file."""
    global _default
    with _lock:
        if _default is None:
            _default = Client()
        return _default


class Bound:
    """Base of the repositories: a fixed client, or the default one at each call (so
    `spool.packages` follows a later `spool.login`)."""

    def __init__(self, client: Client | None = None) -> None:
        self._fixed = client

    @property
    def client(self) -> Client:
        return self._fixed or default_client()
