"""User code runs as its service's bot: it finds the API's address and a token of the bot in
`SPOOL_URL` and `SPOOL_TOKEN` (what the SDK reads), sees the bot's project and nothing else,
and never the agent's own credentials."""

from __future__ import annotations

import httpx
import orjson
import pytest
from support.platform import deploy, run

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

CODE = b"""
import json
import os
import urllib.error
import urllib.request


def _status(path):
    request = urllib.request.Request(
        os.environ["SPOOL_URL"] + "/api/v1" + path,
        headers={"Authorization": "Bearer " + os.environ["SPOOL_TOKEN"]},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as e:
        return e.code, None


class ServiceRunner:
    def run(self, own, other):
        mine, projects = _status("/projects")
        return {
            "projects": [p["id"] for p in projects or []],
            "own": _status("/projects/" + own)[0],
            "other": _status("/projects/" + other)[0],
            "me": mine,
            "agentEnv": sorted(k for k in os.environ if k.startswith("SPOOL_")),
        }
"""
MANIFEST = {
    "name": "whoami",
    "modules": [
        {
            "functions": [
                {
                    "name": "run",
                    "input": [
                        {"name": "own", "type": "String"},
                        {"name": "other", "type": "String"},
                    ],
                }
            ]
        }
    ],
}


async def test_user_code_calls_the_api_as_its_services_bot(client: httpx.AsyncClient) -> None:
    files = {"main.py": CODE, "package.json": orjson.dumps(MANIFEST)}
    service = await deploy(client, files, "whoami")
    other = (await client.post("/projects", json={"name": "not-the-bots"})).json()["id"]
    bots = (await client.get(f"/projects/{service['projectId']}/bots")).json()
    assert [b["id"] for b in bots] == [service["botId"]]

    done = await run(client, service["id"], {"own": service["projectId"], "other": other})

    assert done["latestStatus"]["status"] == "success", done["latestStatus"]
    assert done["output"] == {
        "projects": [service["projectId"]],
        "own": 200,
        "other": 404,
        "me": 200,
        "agentEnv": ["SPOOL_TOKEN", "SPOOL_URL"],
    }
    # One token per replica, listed under the bot, expiring.
    tokens = await client.get(f"/projects/{service['projectId']}/bots/{bots[0]['id']}/tokens")
    [token] = tokens.json()
    assert token["name"] == "replica"
    assert token["expiresAt"] is not None
