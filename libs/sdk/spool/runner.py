"""What user code imports: `BaseServiceRunner`, the `Progress` and `Context` it may ask for,
and the entity classes its inputs arrive as.

    import spool

    class ServiceRunner(spool.BaseServiceRunner):
        def run(self, item: spool.Item, progress: spool.Progress, context: spool.Context):
            progress.update(progress=50, message="half way")
            return {"name": item.name, "trigger": context.trigger_id}

The agent passes `progress` and `context` to a function whose signature names them, and an
entity-typed input (declared "Item", "Dataset[]"...) as an object of its class, so
`isinstance(item, spool.Item)` holds. Subclassing `BaseServiceRunner` is optional: the agent
runs any class, and user code that imports nothing works the same.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol, TypeVar, overload, runtime_checkable

from spool_agent.entities import (
    Annotation,
    Assignment,
    Dataset,
    Entity,
    Execution,
    Item,
    Model,
    Package,
    Project,
    Recipe,
    Service,
    Task,
)
from spool_agent.runner_state import TERMINATION_MESSAGE, current_call

__all__ = [
    "TERMINATION_MESSAGE",
    "Annotation",
    "Assignment",
    "BaseServiceRunner",
    "Context",
    "Dataset",
    "Entity",
    "Execution",
    "Item",
    "Model",
    "Package",
    "Progress",
    "Project",
    "Recipe",
    "Service",
    "Task",
    "function",
]


@runtime_checkable
class Progress(Protocol):
    """The `progress` argument: dtlpy's `update` signature, and a logger.

    Only `progress` (a percentage, clamped to 0..100) and `message` are recorded; the platform
    keeps a rise of at least 5 points, and 100 always. Raises InterruptedError once the
    execution was terminated."""

    logger: logging.Logger

    def update(
        self,
        status: str | None = None,
        progress: int = 0,
        message: str | None = None,
        output: Any = None,
        duration: float | None = None,
        action: str | None = None,
    ) -> None: ...


@runtime_checkable
class Context(Protocol):
    """The `context` argument: which execution this is, why it runs, and whether it was asked
    to stop. `event` is the entity event that fired the trigger (None for a direct run)."""

    @property
    def execution_id(self) -> str | None: ...

    @property
    def attempt(self) -> int | None:
        """1 on the execution's first attempt, 2 on its first rerun..."""
        ...

    @property
    def service_id(self) -> str | None: ...

    @property
    def service_name(self) -> str | None: ...

    @property
    def project_id(self) -> str | None: ...

    @property
    def replica_id(self) -> str | None: ...

    @property
    def trigger_id(self) -> str | None: ...

    @property
    def event(self) -> dict[str, Any] | None: ...

    @property
    def logger(self) -> logging.Logger: ...

    @property
    def terminated(self) -> bool:
        """True once the execution was asked to terminate; long loops should check it."""
        ...

    def raise_if_terminated(self) -> None:
        """Raise InterruptedError("Execution received termination signal") if terminated."""
        ...


F = TypeVar("F", bound=Callable[..., Any])


@overload
def function(method: F, /) -> F: ...
@overload
def function(
    *, display_name: str | None = None, description: str | None = None
) -> Callable[[F], F]: ...
def function(
    method: F | None = None,
    /,
    *,
    display_name: str | None = None,
    description: str | None = None,
) -> F | Callable[[F], F]:
    """Declare a method of the service class as one of its functions, instead of writing
    package.json: `@spool.function` or `@spool.function(display_name=..., description=...)`.

    The platform reads it from the source when the package is pushed without a package.json
    naming modules (the code is never run there): every argument but self, `progress` and
    `context` is an input, typed from its annotation (`str` String, `int` Integer, `float`
    Float, `bool` Boolean, `spool.Item` Item, `list[spool.Item]` Item[]..., else Json), and
    arguments without a default are required. At run time the decorator changes nothing.
    Only string literals count as `display_name` and `description` (the docstring otherwise).
    """

    def mark(target: F) -> F:
        target.__spool_function__ = {  # type: ignore[attr-defined]
            "display_name": display_name,
            "description": description,
        }
        return target

    return mark(method) if method is not None else mark


class BaseServiceRunner:
    """The base class of a service, as dtlpy's. Optional on Spool: any class runs."""

    _do_reset: bool = False

    def do_reset(self) -> None:
        """Ask for a fresh instance after this execution (dtlpy's flag). Spool's agent does not
        act on it yet: the instance lives as long as its runner process."""
        self._do_reset = True

    @staticmethod
    def ping(progress: Progress) -> str:
        """A liveness function: declare it in package.json to call it."""
        progress.logger.debug("received ping")
        return "pong"

    def kill_event(self) -> None:
        """Cooperative termination, as dtlpy's: raise InterruptedError("Execution received
        termination signal") if the execution running on this thread was terminated.

        Call it in long loops. In thread mode the agent also raises that exception in the
        call's thread by itself, but only while the thread runs user code; a thread busy in a
        library sees it at its next `kill_event()`, `context.raise_if_terminated()` or
        `progress.update(...)`. In process mode a terminate kills the call's process."""
        call = current_call()
        if call is not None and call.terminated.is_set():
            raise InterruptedError(TERMINATION_MESSAGE)
