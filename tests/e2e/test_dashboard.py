"""The dashboard (services/gateway/spool_gateway/dashboard/) in headless Chromium against a
whole running platform: Debian's chromium, driven by Playwright, started by the tests.

The tests sign in with a token, open every page, run an execution from a service's page and
watch its progress bar fill, pause and resume a service, restart a replica, edit runtime
settings (a bad value shows the API's reason next to its field), filter executions, toggle a
trigger and dry-run an event. A viewer's write is refused with the API's message. Each page is
saved as a screenshot in SPOOL_SCREENSHOTS (default build/dashboard/; docs/dashboard.md shows
a set of them). Any error the browser logs (a script error, a CSP violation, a failed request
the page did not expect) fails the test that caused it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import pytest_asyncio
from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright, expect
from support.platform import LocalPlatform, wait

from spool_common.archive import build_archive

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

CHROMIUM = os.environ.get("SPOOL_CHROMIUM", "/usr/bin/chromium")
SHOTS = Path(os.environ.get("SPOOL_SCREENSHOTS", "build/dashboard"))
WAIT_MS = 30_000  # the longest a page may take to show what the platform did

STEPPER = {
    "main.py": b"""
import time

import spool


class ServiceRunner(spool.BaseServiceRunner):
    def run(self, progress: spool.Progress, steps: int = 5, step_seconds: float = 0.4):
        for step in range(1, steps + 1):
            time.sleep(step_seconds)
            progress.update(progress=100 * step // steps, message=f"step {step} of {steps}")
            print(f"finished step {step} of {steps}", flush=True)
        return {"steps": steps}

    def score(self, value: float = 0.0):
        return value * 2

    def on_item(self, item: spool.Item):
        return item.id

    def echo(self, text: str):
        return text
""",
    "package.json": orjson.dumps(
        {
            "name": "stepper",
            "modules": [
                {
                    "name": "default_module",
                    "entryPoint": "main.py",
                    "functions": [
                        {
                            "name": "run",
                            "input": [
                                {"name": "steps", "type": "Integer"},
                                {"name": "step_seconds", "type": "Float"},
                            ],
                        },
                        {"name": "score", "input": [{"name": "value", "type": "Float"}]},
                        {"name": "on_item", "input": [{"name": "item", "type": "Item"}]},
                        {"name": "echo", "input": [{"name": "text", "type": "String"}]},
                    ],
                }
            ],
        }
    ),
}


@dataclass(frozen=True)
class World:
    url: str  # the dashboard
    token: str  # the admin's
    viewer_token: str
    developer_id: str
    developer_token: str
    project_id: str
    service_id: str
    burst_id: str  # autoscaled (1 to 2 replicas on a queue of 2 per replica)
    trigger_in: str  # fires on Items created in /in
    trigger_out: str  # fires on Items created in /out


async def _ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(platform: LocalPlatform, client: httpx.AsyncClient) -> World:
    project = await _ok(await client.post("/projects", json={"name": "dashboard"}), 201)
    upload = {"codebase": ("code.zip", build_archive(STEPPER), "application/zip")}
    package = await _ok(
        await client.post("/packages", files=upload, data={"projectId": project["id"]}), 201
    )
    body = {
        "name": "stepper",
        "projectId": project["id"],
        "packageId": package["id"],
        "runtime": {"concurrency": 2},
    }
    service = await _ok(await client.post("/services", json=body), 201)
    scaler = {"type": "rabbitmq", "minReplicas": 1, "maxReplicas": 2, "queueLength": 2}
    scaler |= {"pollingInterval": 1, "cooldownPeriod": 5}
    burst = {**body, "name": "burst", "runtime": {"concurrency": 1, "autoscaler": scaler}}
    burst_service = await _ok(await client.post("/services", json=burst), 201)
    triggers = []
    for folder in ("/in", "/out"):
        spec = {
            "resource": "Item",
            "actions": ["Created"],
            "filter": {"dir": folder},
            "operation": {
                "type": "function",
                "serviceId": service["id"],
                "functionName": "on_item",
            },
        }
        trigger = {"name": f"items{folder.replace('/', '-')}", "projectId": project["id"]}
        triggers.append(
            await _ok(await client.post("/triggers", json={**trigger, "spec": spec}), 201)
        )
    users = {}
    for role in ("viewer", "developer"):
        user = await _ok(await client.post("/users", json={"name": f"dashboard-{role}"}), 201)
        member = {"memberId": user["user"]["id"], "role": role}
        await _ok(await client.post(f"/projects/{project['id']}/members", json=member), 201)
        users[role] = user
    # One finished execution, so that lists and the load have something to show.
    done = await _ok(await client.post(f"/executions/{service['id']}", json={}), 201)
    assert (await wait(client, done["id"]))["latestStatus"]["status"] == "success"
    return World(
        url=f"{platform.url}/dashboard/",
        token=platform.token,
        viewer_token=users["viewer"]["token"]["token"],
        developer_id=users["developer"]["user"]["id"],
        developer_token=users["developer"]["token"]["token"],
        project_id=project["id"],
        service_id=service["id"],
        burst_id=burst_service["id"],
        trigger_in=triggers[0]["id"],
        trigger_out=triggers[1]["id"],
    )


@pytest.fixture(scope="module")
def chromium() -> str:
    """Debian's Chromium; missing, it fails the tests (never a skip)."""
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: run scripts/ensure-browser.sh"
    SHOTS.mkdir(parents=True, exist_ok=True)
    return CHROMIUM


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser(chromium: str) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=chromium,
            args=["--no-sandbox"],  # root in CI has no user namespace
        )
        yield launched
        await launched.close()


class Tab:
    """One signed-in browser tab and the errors its pages logged."""

    def __init__(self, page: Page, world: World) -> None:
        self.page = page
        self.world = world
        self.errors: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(f"page error: {error}"))

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"console: {message.text}")

    async def open(self, route: str, page_name: str) -> None:
        await self.page.goto(self.world.url + route)
        main = self.page.locator(f'main[data-page="{page_name}"]')
        await expect(main).to_have_attribute("data-loaded", "true", timeout=WAIT_MS)

    async def sign_in(self, token: str) -> None:
        await self.page.goto(self.world.url)
        form = self.page.locator('form[data-testid="signin"]')
        await form.locator('input[name="token"]').fill(token)
        await form.locator('[type="submit"]').click()
        await expect(self.page.locator('[data-testid="sign-out"]')).to_be_visible()
        await self.page.select_option('select[data-testid="project"]', self.world.project_id)

    async def shot(self, name: str) -> None:
        await self.page.screenshot(path=SHOTS / f"{name}.png", full_page=True)


@contextlib.asynccontextmanager
async def new_tab(browser: Browser, world: World, token: str | None) -> AsyncIterator[Tab]:
    """A tab of its own (its own sessionStorage), signed in with `token` unless None."""
    context = await browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        opened = Tab(await context.new_page(), world)
        if token is not None:
            await opened.sign_in(token)
        yield opened
    finally:
        await context.close()


@pytest_asyncio.fixture(loop_scope="module")
async def tab(browser: Browser, world: World) -> AsyncIterator[Tab]:
    """The admin's tab; any error its pages logged fails the test."""
    async with new_tab(browser, world, world.token) as opened:
        yield opened
    assert not opened.errors, "\n".join(opened.errors)


def row(tab: Tab, kind: str, entity_id: str) -> Any:
    return tab.page.locator(f'tr[data-{kind}-id="{entity_id}"]')


async def test_signing_in_needs_a_valid_token(browser: Browser, world: World) -> None:
    async with new_tab(browser, world, None) as fresh:
        page = fresh.page
        await page.goto(world.url)
        form = page.locator('form[data-testid="signin"]')
        await expect(form).to_be_visible()
        await fresh.shot("sign-in")
        await form.locator('input[name="token"]').fill("spu_not_a_token")
        await form.locator('[type="submit"]').click()
        await expect(page.locator('[data-testid="error"]')).to_contain_text("token")
        await expect(page.locator('[data-testid="sign-out"]')).to_have_count(0)


async def test_the_services_page_shows_each_service_with_its_replicas_and_load(
    tab: Tab, world: World
) -> None:
    await tab.open("#/services", "services")
    service = row(tab, "service", world.service_id)
    await expect(service.locator('[data-field="name"]')).to_have_text("stepper")
    await expect(service.locator('[data-field="status"]')).to_have_text("Active", timeout=WAIT_MS)
    await expect(service.locator('[data-field="replicas"]')).to_contain_text("1")
    await expect(service.locator('[data-field="revision"]')).to_contain_text("1")
    for field in ("queued", "inFlight", "p50", "p75", "perMinute"):
        await expect(service.locator(f'[data-field="{field}"]')).not_to_be_empty()
    await tab.shot("services")


async def test_a_service_is_paused_and_resumed_from_its_row(
    tab: Tab, world: World, client: httpx.AsyncClient
) -> None:
    await tab.open("#/services", "services")
    service = row(tab, "service", world.service_id)
    status = service.locator('[data-field="status"]')
    await expect(status).to_have_text("Active", timeout=WAIT_MS)
    await service.locator('[data-action="pause"]').click()
    await expect(status).to_have_text("Inactive", timeout=WAIT_MS)
    paused = await _ok(await client.get(f"/services/{world.service_id}"))
    assert paused["active"] is False
    await service.locator('[data-action="resume"]').click()
    await expect(status).to_have_text("Active", timeout=WAIT_MS)
    # Active comes with the first ready replica; the one paused may still be draining.
    states: list[str] = []
    for _ in range(WAIT_MS // 100):
        resumed = await _ok(await client.get(f"/services/{world.service_id}/status"))
        states = [r["state"] for r in resumed["runtimeStatus"]]
        if states == ["ready"]:
            break
        await asyncio.sleep(0.1)
    assert states == ["ready"], "the resumed service did not settle on one ready replica"


async def test_runtime_settings_are_edited_with_the_apis_validation(
    tab: Tab, world: World, client: httpx.AsyncClient
) -> None:
    await tab.open("#/services", "services")
    await row(tab, "service", world.service_id).locator('[data-action="edit"]').click()
    form = tab.page.locator('form[data-testid="edit-runtime"]')
    concurrency = form.locator('input[name="runtime.concurrency"]')
    await concurrency.fill("-3")
    await form.locator('[type="submit"]').click()
    error = form.locator('[data-error-for="runtime.concurrency"]')
    await expect(error).not_to_be_empty(timeout=WAIT_MS)
    await tab.shot("edit-runtime")
    unchanged = await _ok(await client.get(f"/services/{world.service_id}"))
    assert unchanged["runtime"]["concurrency"] == 2  # nothing written
    await concurrency.fill("3")
    await form.locator('[type="submit"]').click()
    await expect(form).to_be_hidden(timeout=WAIT_MS)
    changed = await _ok(await client.get(f"/services/{world.service_id}"))
    assert changed["runtime"]["concurrency"] == 3
    tab.errors = [e for e in tab.errors if "400" not in e]  # the refused PATCH, shown above


async def test_an_execution_run_from_the_service_page_fills_its_progress_bar(
    tab: Tab, world: World, client: httpx.AsyncClient
) -> None:
    await tab.open(f"#/services/{world.service_id}", "service")
    run = tab.page.locator('form[data-testid="run"]')
    function = run.locator('[name="functionName"]')
    if await function.evaluate("e => e.tagName") == "SELECT":
        await function.select_option("run")
    else:
        await function.fill("run")
    await run.locator('textarea[name="input"]').fill('{"steps": 5, "step_seconds": 0.5}')
    await run.locator('[type="submit"]').click()

    await tab.page.wait_for_url(re.compile(r"#/executions/[0-9a-f-]+$"), timeout=WAIT_MS)
    execution_id = tab.page.url.rsplit("/", 1)[-1]
    main = tab.page.locator('main[data-page="execution"]')
    await expect(main).to_have_attribute("data-loaded", "true", timeout=WAIT_MS)
    progress = tab.page.locator('[data-testid="progress"]')
    await expect(progress).to_have_attribute("role", "progressbar")
    # Seen part way (the steps take 2.5 s), then full.
    await expect(progress).to_have_attribute(
        "aria-valuenow", re.compile(r"^(20|40|60|80)$"), timeout=WAIT_MS
    )
    await tab.shot("execution-running")
    await expect(progress).to_have_attribute("aria-valuenow", "100", timeout=WAIT_MS)
    await expect(tab.page.locator('[data-testid="status"]')).to_have_text(
        re.compile("success", re.I), timeout=WAIT_MS
    )
    await expect(tab.page.locator('[data-testid="output"]')).to_contain_text('"steps"')
    await expect(tab.page.locator('[data-testid="status-log"]')).to_contain_text("in-progress")
    await expect(tab.page.locator('pre[data-testid="logs"]')).to_contain_text(
        "finished step 5 of 5", timeout=WAIT_MS
    )
    await tab.shot("execution")
    stored = await _ok(await client.get(f"/executions/{execution_id}"))
    assert stored["latestStatus"]["status"] == "success"
    assert stored["input"] == {"steps": 5, "step_seconds": 0.5}


async def test_the_service_page_charts_a_backlog_and_the_autoscalers_answer(
    tab: Tab, world: World, client: httpx.AsyncClient
) -> None:
    page = tab.page
    await tab.open(f"#/services/{world.burst_id}", "service")
    await expect(page.locator('[data-testid="status"]')).to_have_text("Active", timeout=WAIT_MS)
    body = {"functionName": "run", "input": {"steps": 4, "step_seconds": 0.5}}
    batch = {"executions": [body] * 10}  # 20 s of work for one replica
    created = await _ok(await client.post(f"/executions/{world.burst_id}/batch", json=batch), 201)

    # The backlog scales the service up: the decision is marked on the chart and listed with
    # its reason; the chart's lines have many points by the time the queue has drained.
    marker = page.locator('svg[data-testid="load-chart"] [data-testid="decision-marker"]')
    await expect(marker.first).to_be_attached(timeout=WAIT_MS)
    await expect(page.locator('[data-testid="decisions"]')).to_contain_text("queue")
    for execution_id in created["executionIds"]:
        assert (await wait(client, execution_id))["latestStatus"]["status"] == "success"
    # The queue-depth line was drawn through several polls (M x,y L x,y L x,y ...).
    queued = page.locator('svg[data-testid="load-chart"] path.series.s-queued')
    await expect(queued).to_have_attribute("d", re.compile(r"^M[^M]*(L[^L]*){5,}$"))
    await page.select_option('select[data-testid="span"]', "1")  # zoom in on the burst
    await expect(page.locator("tr[data-replica-id]")).not_to_have_count(0)
    recent = page.locator('[data-testid="recent-executions"]')
    await expect(recent.locator("a").first).to_be_visible(timeout=WAIT_MS)
    await expect(page.locator('[data-testid="notifications"]')).to_be_visible()
    await expect(page.locator('pre[data-testid="logs"]')).to_contain_text(
        "finished step", timeout=WAIT_MS
    )
    await tab.shot("service")


async def test_a_replica_is_restarted_from_the_service_page(
    tab: Tab, world: World, client: httpx.AsyncClient
) -> None:
    await tab.open(f"#/services/{world.service_id}", "service")
    replicas = tab.page.locator("tr[data-replica-id]")
    await expect(replicas).to_have_count(1, timeout=WAIT_MS)
    old = await replicas.first.get_attribute("data-replica-id")
    await replicas.first.locator('[data-action="restart-replica"]').click()

    replacement = tab.page.locator(f"tr[data-replica-id]:not([data-replica-id='{old}'])")
    await expect(replacement).to_have_count(1, timeout=WAIT_MS)
    status = await _ok(await client.get(f"/services/{world.service_id}/status"))
    assert old not in [r["replicaId"] for r in status["runtimeStatus"] if r["state"] == "ready"]


async def test_executions_are_filtered_by_function_and_status(
    tab: Tab, world: World, client: httpx.AsyncClient
) -> None:
    scored = await _ok(
        await client.post(
            f"/executions/{world.service_id}",
            json={"functionName": "score", "input": {"value": 2}},
        ),
        201,
    )
    await wait(client, scored["id"])
    await tab.open("#/executions", "executions")
    rows = tab.page.locator("tr[data-execution-id]")
    await expect(rows.first).to_be_visible(timeout=WAIT_MS)
    assert await rows.count() >= 3

    filters = tab.page.locator('form[data-testid="filters"]')
    await filters.locator('[name="functionName"]').fill("score")
    await filters.locator('[name="status"]').select_option("success")
    await filters.locator('[type="submit"]').click()
    await expect(rows).to_have_count(1, timeout=WAIT_MS)
    await expect(row(tab, "execution", scored["id"])).to_be_visible()
    assert "functionName=score" in tab.page.url
    await tab.shot("executions")

    await row(tab, "execution", scored["id"]).locator("a").first.click()
    await expect(tab.page.locator('[data-testid="output"]')).to_contain_text("4", timeout=WAIT_MS)
    await tab.page.locator('[data-action="rerun"]').click()
    # Same id, run again: its status log gains a rerun and ends in success.
    await expect(tab.page.locator('[data-testid="status-log"]')).to_contain_text(
        "rerun", timeout=WAIT_MS
    )
    await expect(tab.page.locator('[data-testid="status"]')).to_have_text(
        re.compile("success", re.I), timeout=WAIT_MS
    )
    rerun = await _ok(await client.get(f"/executions/{scored['id']}"))
    assert [e["status"] for e in rerun["statusLog"]].count("success") == 2


async def test_a_trigger_is_toggled_and_an_event_dry_run_says_which_fire(
    tab: Tab, world: World, client: httpx.AsyncClient
) -> None:
    await tab.open("#/triggers", "triggers")
    toggle = row(tab, "trigger", world.trigger_out).locator('[data-action="toggle-active"]')
    await expect(toggle).to_be_checked()
    await toggle.uncheck()
    await expect(toggle).not_to_be_checked()
    for _ in range(50):
        if not (await _ok(await client.get(f"/triggers/{world.trigger_out}")))["active"]:
            break
        await tab.page.wait_for_timeout(100)
    else:
        raise AssertionError("the trigger was not deactivated")

    form = tab.page.locator('form[data-testid="dry-run"]')
    event = {"resource": "Item", "action": "Created", "entity": {"id": "i1", "dir": "/in"}}
    await form.locator('textarea[name="event"]').fill(orjson.dumps(event).decode())
    await form.locator('[type="submit"]').click()
    result = tab.page.locator('[data-testid="dry-run-result"]')
    fires = result.locator(f'[data-trigger-id="{world.trigger_in}"]')
    await expect(fires).to_contain_text(re.compile("fires", re.I), timeout=WAIT_MS)
    other = result.locator(f'[data-trigger-id="{world.trigger_out}"]')
    await expect(other).to_contain_text("inactive")
    await tab.shot("triggers")
    await toggle.check()
    await expect(toggle).to_be_checked()


async def test_markup_from_the_api_is_shown_as_text(
    tab: Tab, world: World, client: httpx.AsyncClient
) -> None:
    hostile = "<img src=x onerror=document.title=1><b>bold</b>"  # nothing JSON escapes
    body = {"functionName": "echo", "input": {"text": hostile}}
    created = await _ok(await client.post(f"/executions/{world.service_id}", json=body), 201)
    await wait(client, created["id"])
    await tab.open(f"#/executions/{created['id']}", "execution")
    for field in ("input", "output"):
        shown = tab.page.locator(f'[data-testid="{field}"]')
        await expect(shown).to_contain_text(hostile)
        await expect(shown.locator("img, b")).to_have_count(0)
    assert await tab.page.title() != "1"


async def test_a_viewer_sees_every_page_and_no_write_control(
    browser: Browser, world: World, client: httpx.AsyncClient
) -> None:
    async with new_tab(browser, world, world.viewer_token) as viewer:
        await _viewer_checks(viewer, world)
    assert not viewer.errors, "\n".join(viewer.errors)
    assert (await _ok(await client.get(f"/services/{world.service_id}")))["active"] is True


async def _viewer_checks(viewer: Tab, world: World) -> None:
    await viewer.open("#/services", "services")
    await expect(viewer.page.locator('[data-testid="role"]')).to_have_text("role: viewer")
    for action in ("pause", "resume", "rollback", "edit"):
        button = row(viewer, "service", world.service_id).locator(f'[data-action="{action}"]')
        await expect(button).to_be_disabled()
    await viewer.open(f"#/services/{world.service_id}", "service")
    page = viewer.page
    await expect(page.locator('[data-action="restart-replica"]').first).to_be_disabled()
    await expect(page.locator('form[data-testid="run"] [type="submit"]')).to_be_disabled()
    await viewer.open("#/executions", "executions")
    await viewer.open("#/triggers", "triggers")
    toggle = row(viewer, "trigger", world.trigger_in).locator('[data-action="toggle-active"]')
    await expect(toggle).to_be_disabled()
    dry_run = page.locator('form[data-testid="dry-run"]')  # reading: a viewer may
    event = {"resource": "Item", "action": "Created", "entity": {"id": "i2", "dir": "/in"}}
    await dry_run.locator('textarea[name="event"]').fill(orjson.dumps(event).decode())
    await dry_run.locator('[type="submit"]').click()
    verdict = page.locator(f'[data-testid="dry-run-result"] [data-trigger-id="{world.trigger_in}"]')
    await expect(verdict).to_contain_text(re.compile("fires", re.I), timeout=WAIT_MS)


async def test_a_developer_demoted_meanwhile_sees_the_apis_refusal(
    browser: Browser, world: World, client: httpx.AsyncClient
) -> None:
    url = f"/projects/{world.project_id}/members/{world.developer_id}"
    async with new_tab(browser, world, world.developer_token) as developer:
        await developer.open("#/services", "services")
        role = developer.page.locator('[data-testid="role"]')
        await expect(role).to_have_text("role: developer")
        await _ok(await client.put(url, json={"role": "viewer"}))
        try:
            pause = row(developer, "service", world.service_id).locator('[data-action="pause"]')
            await pause.click()
            error = developer.page.locator('[data-testid="error"]')
            await expect(error).to_contain_text(
                "this needs the role developer in the project (you: viewer)", timeout=WAIT_MS
            )
            await developer.shot("refused")
        finally:
            await _ok(await client.put(url, json={"role": "developer"}))
    assert [e for e in developer.errors if "403" not in e] == []
    assert (await _ok(await client.get(f"/services/{world.service_id}")))["active"] is True
