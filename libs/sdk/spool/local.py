"""Run a package's function in this process, as a replica would; and `replay` a platform
execution here, under a debugger if asked.

    runner = LocalServiceRunner("examples/long-job")
    output = runner.run("run", {"steps": 4})
    runner.progress_updates  # [ProgressUpdate(progress=25, message='step 1 of 4', ...), ...]

It follows the agent's contract with the platform's own code: the package is read and checked
as a push reads it (`spool_gateway.packaging`: package.json, or modules found in the sources),
init params and inputs are checked and completed as the gateway checks them
(`spool_gateway.inputs`), and the call goes through the agent's `invoke` (entity inputs as
`spool.Item`..., `progress` and `context` given to a function that names them). The instance
is built once, on the first run, in the codebase folder (as the agent's current directory).
Exceptions propagate unchanged; an output the platform could not store raises `OutputError`.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import logging
import os
import pdb
import sys
import tempfile
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import httpx
import orjson

from spool import config
from spool.client import USER_AGENT, Client
from spool.errors import SpoolConnectionError, from_response
from spool_agent import protocol
from spool_agent.entities import to_jsonable
from spool_agent.progress import should_record
from spool_agent.runner_calls import invoke
from spool_agent.runner_output import Outbox
from spool_agent.runner_state import CallState
from spool_common.archive import Archive, extract_archive
from spool_common.errors import ValidationFailure
from spool_common.models import DEFAULT_MODULE_NAME, Package, PackageFunction, PackageModule
from spool_gateway.inputs import validate_input
from spool_gateway.packaging import build_package

__all__ = [
    "Debugger",
    "LocalServiceRunner",
    "OutputError",
    "ProgressUpdate",
    "ReplayError",
    "debug_call",
    "read_package",
    "replay",
]

log = logging.getLogger("spool.local")

# Runs `function(**kwargs)` under a debugger and returns what it returns.
Debugger = Callable[[Callable[..., Any], dict[str, Any]], Any]

_READ = frozenset({"package.json", "requirements.txt"})  # with every .py file: what a push reads
_SKIPPED_DIRS = frozenset({"__pycache__", "node_modules", "venv"})
DOWNLOAD_TIMEOUT = 60.0  # seconds for the package revision's zip


class OutputError(ValueError):
    """The function returned, but the platform could not store its output."""


class ReplayError(RuntimeError):
    """The execution cannot be replayed as recorded (it names no package revision); the
    platform's own refusals raise the SDK's errors (`spool.NotFound`...)."""


@dataclass(frozen=True)
class ProgressUpdate:
    progress: int  # clamped to 0..100, as the agent does
    message: str | None
    recorded: bool  # whether the platform would keep it (a rise of 5 points or more, or 100)


class _ProgressRecorder:
    """Stands in for the runner's outbox, which `invoke` only hands progress frames."""

    def __init__(self, updates: list[ProgressUpdate]) -> None:
        self._updates = updates

    def frame(self, frame: dict[str, Any]) -> None:
        update = protocol.Progress.from_frame(frame)
        last = next((u.progress for u in reversed(self._updates) if u.recorded), None)
        recorded = should_record(last, update.percent)
        self._updates.append(ProgressUpdate(update.percent, update.message, recorded))
        log.info("progress %d%% %s", update.percent, update.message or "")


def read_package(src_path: Path) -> Package:
    """The package in a folder, read and checked as a push of its zip would be."""
    files = {}
    for path in sorted(src_path.rglob("*")):
        relative = path.relative_to(src_path)
        if any(p.startswith(".") or p in _SKIPPED_DIRS for p in relative.parts[:-1]):
            continue
        if path.is_file() and (path.suffix == ".py" or path.name in _READ):
            files[relative.as_posix()] = path.read_bytes()
    archive = Archive(files=files, sha256="local", size=0, paths=tuple(files))
    now = datetime.now(UTC)
    return build_package(
        {}, archive, package_id="local", project_id="local", creator="local", now=now
    )


def _module(package: Package, name: str | None) -> PackageModule:
    """The module named, else the service default's (`default_module`), else the first."""
    if name is None:
        return package.module(DEFAULT_MODULE_NAME) or package.modules[0]
    module = package.module(name)
    if module is None:
        names = ", ".join(m.name for m in package.modules)
        raise ValidationFailure.of("moduleName", f"no module '{name}' (modules: {names})")
    return module


def _load_class(src_path: Path, module: PackageModule) -> type:
    """Import the entry point under a name of its own (two packages may both have a main.py),
    with the codebase first on sys.path, as the agent does."""
    path = (src_path / module.entry_point).resolve()
    for folder in dict.fromkeys([str(path.parent), str(src_path)]):
        if folder not in sys.path:
            sys.path.insert(0, folder)
    name = f"_spool_local_{uuid.uuid4().hex[:8]}_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load entry point {module.entry_point!r} from {src_path}")
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[name] = loaded
    spec.loader.exec_module(loaded)
    cls = getattr(loaded, module.class_name, None)
    if not isinstance(cls, type):
        entry, name = module.entry_point, module.class_name
        raise AttributeError(f"entry point {entry!r} defines no class {name!r}")
    return cls


def check_output(output: Any) -> Any:
    """`output` as the platform stores it (JSON, entities as theirs), or OutputError."""
    try:
        body = protocol.dump_json(output, default=to_jsonable)
    except TypeError as e:
        raise OutputError(f"the function's return value is not JSON-serialisable: {e}") from e
    if len(body) > protocol.DEFAULT_MAX_OUTPUT_BYTES:
        raise OutputError(protocol.output_too_large_message(protocol.DEFAULT_MAX_OUTPUT_BYTES))
    return orjson.loads(body)


class LocalServiceRunner:
    """One module of a package, as one replica of a service that runs it: `__init__` runs
    once (on the first `run`) with `init_params`, then each `run` is one execution. One call
    at a time: `terminate()`, from another thread, asks the current one to stop."""

    def __init__(
        self,
        src_path: str | Path = ".",
        module_name: str | None = None,
        init_params: Mapping[str, Any] | None = None,
    ) -> None:
        self.src_path = Path(src_path).resolve()
        self.package = read_package(self.src_path)
        self.module = _module(self.package, module_name)
        init = PackageFunction(name="__init__", input=self.module.init_inputs)
        self.init_params = validate_input(init, dict(init_params or {}), field="initParams").input
        self.progress_updates: list[ProgressUpdate] = []
        self.output: Any = None  # the last run's output as the platform would store it
        self._instance: Any = None
        self._state: CallState | None = None

    @property
    def instance(self) -> Any:
        """The service class's instance, built on first use."""
        if self._instance is None:
            with contextlib.chdir(self.src_path):
                cls = _load_class(self.src_path, self.module)
                self._instance = cls(**self.init_params)
        return self._instance

    def run(
        self,
        function_name: str = "run",
        execution_input: Mapping[str, Any] | None = None,
        *,
        execution_id: str | None = None,
        trigger_id: str | None = None,
        event: dict[str, Any] | None = None,
        attempt: int = 1,
        debugger: bool | Debugger = False,
    ) -> Any:
        """Run one function with `execution_input` (checked as the gateway checks it) and
        return its output; `context.attempt` is `attempt`. `debugger=True` runs it under pdb
        (`debug_call`)."""
        context = {
            "execution_id": execution_id or f"local-{uuid.uuid4().hex}",
            "attempt": attempt,
            "service_id": "local",
            "service_name": self.package.name,
            "project_id": "local",
            "trigger_id": trigger_id,
            "event": event,
            "replica_id": "local",
        }
        call = self._call(function_name, execution_input, context)
        target = self.instance
        if debugger:
            hook = debug_call if debugger is True else debugger
            target = _Debugged(target, function_name, hook)
        self._state = CallState(call.id, in_thread=False)
        with contextlib.chdir(self.src_path):
            output = invoke(
                target, call, cast(Outbox, _ProgressRecorder(self.progress_updates)), self._state
            )
        self.output = check_output(output)
        return output

    def terminate(self) -> None:
        """Terminate the running call, from another thread: its `kill_event()`,
        `context.raise_if_terminated()` and `progress.update()` raise InterruptedError."""
        if self._state is not None:
            self._state.terminate()

    def _call(
        self,
        function_name: str,
        execution_input: Mapping[str, Any] | None,
        context: dict[str, Any],
    ) -> protocol.Call:
        function = self.module.function(function_name)
        if function is None:
            known = ", ".join(f.name for f in self.module.functions)
            raise ValidationFailure.of("functionName", f"no function '{function_name}' in {known}")
        inputs = validate_input(function, dict(execution_input or {})).input
        types = {io.name: io.type.value for io in function.input}
        return protocol.Call(context["execution_id"], function_name, inputs, context, types)


class _Debugged:
    """The instance with one of its functions run by a debugger; the agent's `invoke` sees the
    function's own signature (`functools.wraps`), so it passes the same arguments."""

    def __init__(self, instance: Any, function_name: str, debugger: Debugger) -> None:
        self._instance = instance
        self._function_name = function_name
        self._debugger = debugger

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._instance, name)
        if name != self._function_name or not callable(attribute):
            return attribute

        @functools.wraps(attribute)
        def debugged(**kwargs: Any) -> Any:
            return self._debugger(attribute, kwargs)

        return debugged


def debug_call(function: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    """pdb stops at the function's first line; if it raises, pdb shows where (post-mortem)
    before the exception propagates. PYTHONBREAKPOINT names another debugger (it stops just
    before the call: `step` into it) or, set to 0, none."""
    if os.environ.get("PYTHONBREAKPOINT", "") not in ("", "pdb.set_trace"):
        breakpoint()
        return function(**kwargs)
    try:
        return pdb.runcall(function, **kwargs)
    except Exception as e:
        pdb.post_mortem(e.__traceback__)
        raise


# --- replay ------------------------------------------------------------------------------


def replay(
    execution_id: str,
    src_path: str | Path | None = None,
    debugger: bool | Debugger = False,
    *,
    url: str | None = None,
    token: str | None = None,
    download_to: str | Path | None = None,
) -> Any:
    """Run a platform execution again here: its function, input and trigger, with its
    service's module and init params, on `src_path` or else on the code of the package
    revision it ran (downloaded to `download_to`, or to a new temporary folder, kept for the
    debugging session). Returns the output; the function's exception propagates.

    `url` and `token` are found as every SDK call finds them: the arguments, then $SPOOL_URL
    and $SPOOL_TOKEN, then the config file `spool login` wrote (`spool.config`). A refusal of
    the platform raises the SDK's error for it (`spool.NotFound`, `spool.Unauthorized`...)."""
    credentials = config.resolve(url, token)
    with Client(credentials.url, credentials.token) as client:
        execution = client.get(f"/executions/{execution_id}")
        service = client.get(f"/services/{execution['serviceId']}")
    if src_path is None:
        src_path = _download(credentials, execution, download_to)
    runner = LocalServiceRunner(
        src_path,
        execution.get("moduleName") or service.get("moduleName"),
        service.get("initParams"),
    )
    return runner.run(
        execution.get("functionName") or "run",
        execution.get("input") or {},
        execution_id=execution_id,
        trigger_id=execution.get("triggerId"),
        debugger=debugger,
    )


def _download(
    credentials: config.Credentials, execution: dict[str, Any], dest: str | Path | None
) -> Path:
    """The code of the package revision the execution ran, extracted into `dest`. (A zip, so
    not through `Client.request`, which answers JSON.)"""
    package, revision = execution.get("packageId"), execution.get("packageRevision")
    if not (package and revision):
        raise ReplayError(f"execution {execution['id']} names no package revision; give src_path")
    path = f"/packages/{package}/codebase"
    headers = {"Authorization": f"Bearer {credentials.token}", "User-Agent": USER_AGENT}
    try:
        response = httpx.get(
            credentials.url + config.API_PREFIX + path,
            params={"version": revision},
            headers=headers,
            timeout=DOWNLOAD_TIMEOUT,
        )
    except httpx.TransportError as e:
        where = f"cannot reach Spool at {credentials.url} (GET {path})"
        raise SpoolConnectionError(f"{where}: {e or type(e).__name__}") from e
    if not response.is_success:
        retry_after = response.headers.get("Retry-After")
        raise from_response(response.status_code, response.content, retry_after, f"GET {path}")
    folder = Path(dest) if dest is not None else Path(tempfile.mkdtemp(prefix="spool-replay-"))
    extract_archive(response.content, folder)
    log.info("replay: package %s revision %s in %s", package, revision, folder)
    return folder
