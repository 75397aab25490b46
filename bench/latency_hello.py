"""Create→success latency of the hello execution, sequential runs, on a running platform.

    make up && .venv/bin/python bench/latency_hello.py --runs 200

Deploys examples/hello (as `make demo` does), warms up, then runs `--runs` executions one after
another. For each it records:
- client: from sending POST /executions to receiving the answer of GET …/wait (two HTTP round
  trips included), on one keep-alive connection;
- server: the execution's success timestamp minus its createdAt (both recorded by Spool).
Prints p50 / p90 / p99 / max in milliseconds, as a markdown table.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from demo import deploy  # noqa: E402  (scripts/ is put on the path above)

from platform_ctl import admin_token, gateway_url  # noqa: E402


def _ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))
    return ordered[index]


def measure(client: httpx.Client, service_id: str, runs: int) -> tuple[list[float], list[float]]:
    client_ms: list[float] = []
    server_ms: list[float] = []
    body = {"functionName": "run", "input": {"name": "bench"}}
    for _ in range(runs):
        started = time.perf_counter()
        created = client.post(f"/executions/{service_id}", json=body).json()
        done = client.get(f"/executions/{created['id']}/wait", params={"timeout": 30}).json()
        client_ms.append((time.perf_counter() - started) * 1000)
        if done["latestStatus"]["status"] != "success":
            sys.exit(f"execution {done['id']} ended {done['latestStatus']['status']}")
        finished = _ts(done["latestStatus"]["timestamp"])
        server_ms.append((finished - _ts(done["createdAt"])) * 1000)
    return client_ms, server_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()
    headers = {"Authorization": f"Bearer {admin_token()}"}
    with httpx.Client(base_url=f"{gateway_url()}/api/v1", headers=headers, timeout=60) as client:
        service = deploy(client, ROOT / "examples" / "hello", "hello")
        measure(client, service["id"], args.warmup)
        client_ms, server_ms = measure(client, service["id"], args.runs)
    print(f"| measure ({args.runs} sequential runs) | p50 | p90 | p99 | max | mean |")
    print("|---|---|---|---|---|---|")
    for name, values in (
        ("client: POST → wait answered", client_ms),
        ("server: createdAt → success", server_ms),
    ):
        cells = [_percentile(values, p) for p in (50, 90, 99)] + [max(values)]
        cells.append(statistics.fmean(values))
        print(f"| {name} | " + " | ".join(f"{v:.2f} ms" for v in cells) + " |")


if __name__ == "__main__":
    main()
