"""`spool` commands that set things up and look at them: login, use, projects, push, deploy,
status, scale, triggers. Each handler: read the arguments, one SDK call or two, print."""

from __future__ import annotations

import argparse
import getpass
import sys

from spool import config
from spool.cli_args import (
    find_project,
    find_service,
    json_object,
    project_id,
    stored_settings,
)
from spool.cli_context import Context
from spool.cli_errors import UsageError
from spool.cli_format import (
    autoscaler_line,
    scaling_table,
    status_text,
    table,
    trigger_when,
    triggers_table,
)
from spool.client import Client
from spool.errors import ConfigError, Forbidden
from spool.package import Deployment
from spool.service import Service
from spool_common.models import TriggerType

DEFAULT_URL = "http://127.0.0.1:8080"


# --- login and the default project --------------------------------------------------------


def _ask(prompt: str, secret: bool = False) -> str:
    if not sys.stdin.isatty():
        raise UsageError(f"{prompt.strip(': ')}: not given, and there is no terminal to ask in")
    return (getpass.getpass(prompt) if secret else input(prompt)).strip()


def _url(args: argparse.Namespace) -> str:
    given = args.url
    if not given:
        current = stored_settings().get("url") or DEFAULT_URL
        given = _ask(f"Spool URL [{current}]: ") or str(current)
    try:
        return config.normalise_url(given)
    except ConfigError as e:
        raise UsageError(str(e)) from None


def _token(args: argparse.Namespace) -> str:
    if args.token_stdin:
        token = sys.stdin.readline().strip()
    else:
        token = args.token or _ask("Token: ", secret=True)
    if not token:
        raise UsageError("the token is empty")
    return str(token)


def _who(client: Client) -> str | None:
    """The token's user's name; None for an admin or bot token (/users/me is for users)."""
    try:
        return str(client.get("/users/me")["name"])
    except Forbidden:
        return None


def login(args: argparse.Namespace, ctx: Context) -> int:
    url, token = _url(args), _token(args)
    with Client(url, token) as client:
        client.projects.list()  # the token is accepted (401 otherwise)
        who = _who(client)
        project = find_project(client, ctx.project_arg) if ctx.project_arg else None
    path = config.save(url, token, project=project.id if project else None)
    as_who = f"as {who}" if who else "with an admin or bot token"
    text = f"logged in to {url} {as_who}; saved to {path}"
    if project is not None:
        text += f"\nproject {project.name} ({project.id}) is the default"
    data = {"url": url, "user": who, "config": str(path), "project": project and project.id}
    ctx.emit(data, text)
    return 0


def use(args: argparse.Namespace, ctx: Context) -> int:
    stored = stored_settings()
    url, token = stored.get("url"), stored.get("token")
    if not (isinstance(url, str) and isinstance(token, str)):
        raise ConfigError(
            "`spool use` saves to the config file `spool login` writes: log in first "
            "(or set $SPOOL_PROJECT)"
        )
    project = find_project(ctx.client, args.project_ref)
    path = config.save(url, token, project=project.id)
    ctx.emit(
        {"project": project.to_json(), "config": str(path)},
        f"project {project.name} ({project.id}) is the default; saved to {path}",
    )
    return 0


def projects_ls(args: argparse.Namespace, ctx: Context) -> int:
    found = ctx.client.projects.list()
    default = ctx.project
    rows = [[p.id, p.name, "*" if default in (p.id, p.name) else ""] for p in found]
    ctx.emit([p.to_json() for p in found], table(["ID", "NAME", "DEFAULT"], rows))
    return 0


def projects_create(args: argparse.Namespace, ctx: Context) -> int:
    project = ctx.client.projects.create(args.name)
    ctx.emit(project.to_json(), f"project {project.name} ({project.id}) created")
    ctx.note(f"make it the default with: spool use {project.name}")
    return 0


# --- packages and services ----------------------------------------------------------------


def push(args: argparse.Namespace, ctx: Context) -> int:
    ref = ctx.need_project()
    project = project_id(ctx.client, ref)
    package = ctx.client.packages.push(
        src_path=args.path, package_name=args.name, project_id=project
    )
    text = f"package {package.name} {package.version} ({package.id})"
    ctx.emit(package.to_json(), text)
    return 0


def deploy_text(done: Deployment) -> str:
    package = done.package
    lines = [f"package {package.name} {package.version} ({package.id})"]
    lines += [f"service {s.name} ({s.id}) runs {s.package_revision}" for s in done.services]
    lines += [
        f"trigger {t.name} ({t.id}): {trigger_when(t)} -> {t.spec.operation.function_name}"
        for t in done.triggers
    ]
    return "\n".join(lines)


def deploy(args: argparse.Namespace, ctx: Context) -> int:
    """package.json's package, services and triggers. A package.json without services gets
    one, named after the package (dtlpy's `package.deploy()` default)."""
    ref = ctx.need_project()
    project = project_id(ctx.client, ref)
    done = ctx.client.packages.deploy_from_file(args.path, project_id=project)
    if not done.services:
        done = Deployment(done.package, [done.package.deploy()], done.triggers)
    data = {
        "package": done.package.to_json(),
        "services": [s.to_json() for s in done.services],
        "triggers": [t.to_json() for t in done.triggers],
    }
    ctx.emit(data, deploy_text(done))
    return 0


def _service(ctx: Context, ref: str) -> Service:
    return find_service(ctx.client, ref, ctx.project)


def status(args: argparse.Namespace, ctx: Context) -> int:
    service = _service(ctx, args.service)
    found = service.status()
    latest = service.scaling(limit=1) if service.runtime.autoscaler else []
    target = latest[0].to if latest else None
    data = {"service": service.to_json(), "status": found.to_wire(), "autoscalerTarget": target}
    ctx.emit(data, status_text(service, found, target, ctx.clock()))
    return 0


def scale(args: argparse.Namespace, ctx: Context) -> int:
    """The autoscaler's decisions, newest first, each with its rule and reason."""
    service = _service(ctx, args.service)
    decisions = service.scaling(limit=args.limit)
    head = f"service {service.name} ({service.id}): {autoscaler_line(service)}"
    body = scaling_table(decisions, ctx.clock()) if decisions else "no scaling decisions yet"
    data = {
        "serviceId": service.id,
        "runtime": service.runtime.to_wire(),
        "decisions": [d.to_wire() for d in decisions],
    }
    ctx.emit(data, f"{head}\n\n{body}")
    return 0


# --- triggers -----------------------------------------------------------------------------


def triggers_ls(args: argparse.Namespace, ctx: Context) -> int:
    client = ctx.client
    if args.service:
        service = _service(ctx, args.service)
        found = client.triggers.list(service_id=service.id)
        names = {service.id: service.name}
    else:
        project = project_id(client, ctx.project) if ctx.project else None
        found = client.triggers.list(project_id=project)
        names = {s.id: s.name for s in client.services.list(project_id=project)}
    ctx.emit([t.to_json() for t in found], triggers_table(found, names))
    return 0


def _event_options(args: argparse.Namespace) -> list[str]:
    given = {"--resource": args.resource, "--action": args.actions, "--filter": args.filter}
    given["--mode"] = args.mode
    return [option for option, value in given.items() if value]


def triggers_create(args: argparse.Namespace, ctx: Context) -> int:
    misplaced = _event_options(args)
    if args.cron and misplaced:
        wrong = ", ".join(misplaced)
        raise UsageError(f"--cron makes a cron trigger; {wrong}: only for event triggers")
    service = _service(ctx, args.service)
    trigger = service.triggers.create(
        trigger_type=TriggerType.CRON if args.cron else TriggerType.EVENT,
        name=args.name,
        function_name=args.function,
        cron=args.cron,
        resource=args.resource,
        actions=args.actions,
        filters=json_object(args.filter, "--filter") if args.filter else None,
        execution_mode=args.mode,
        inputs=json_object(args.input, "--input") if args.input else None,
    )
    text = f"trigger {trigger.name} ({trigger.id}): {trigger_when(trigger)} -> {args.function}"
    ctx.emit(trigger.to_json(), text)
    return 0
