"""Throughput of Spool, Celery, Dramatiq and the raw pipeline, alternating, in one run.

    .venv/bin/python bench/compare.py [--rounds 3] [-n 20000] [--out bench/results/compare.json]

Each round runs every contender once, in the same order (Spool first, then the peers: A B A B
…), each as its own process (bench/spool_bench.py, bench/peers.py) that prints one result line.
The machine is shared by nothing else meanwhile. Prints, per contender, the median (min-max)
of executions/s and of CPU ms per execution, and the ratios Spool/X of the medians; writes
every raw result to `--out`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from measure import log  # noqa: E402  (path set above)

CONTENDERS: dict[str, list[str]] = {
    "spool": ["spool_bench.py", "throughput"],
    "celery prefork -c 2": ["peers.py", "celery", "--pool", "prefork"],
    "celery threads -c 10": ["peers.py", "celery", "--pool", "threads"],
    "celery prefork, acks_late + confirms": [
        "peers.py",
        "celery",
        "--pool",
        "prefork",
        "--acks-late-confirms",
    ],
    "dramatiq 2 x 8": ["peers.py", "dramatiq"],
    "raw pipeline, naive": ["peers.py", "raw", "--mode", "naive"],
    "raw pipeline, batched": ["peers.py", "raw", "--mode", "batched"],
}


def run(command: list[str], n: int) -> dict[str, Any]:
    script, *args = command
    done = subprocess.run(
        [sys.executable, str(BENCH / script), *args, "-n", str(n)],
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def spread(values: list[float], digits: int = 0) -> str:
    def show(value: float) -> str:
        return f"{value:,.{digits}f}"

    return f"{show(statistics.median(values))} ({show(min(values))}-{show(max(values))})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("-n", type=int, default=20_000)
    parser.add_argument("--only", nargs="*", choices=list(CONTENDERS), default=list(CONTENDERS))
    parser.add_argument("--out", type=Path, default=BENCH / "results" / "compare.json")
    parser.add_argument("--table-of", type=Path, help="print the table of an earlier --out")
    args = parser.parse_args()
    if args.table_of is not None:
        print_table(json.loads(args.table_of.read_text()))
        return
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in args.only}
    for round_ in range(1, args.rounds + 1):
        for name in args.only:
            result = run(CONTENDERS[name], args.n)
            results[name].append(result)
            log(f"round {round_}: {name}: {result['per_s']:,.0f}/s, {result['cpu_ms_per_exec']} ms")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    print_table(results)


def print_table(results: dict[str, list[dict[str, Any]]]) -> None:
    rounds = max(len(runs) for runs in results.values())
    n = next(iter(results.values()))[0]["n"]
    spool = (
        statistics.median(r["per_s"] for r in results.get("spool", []))
        if "spool" in results
        else None
    )
    head = f"contender ({rounds} rounds of {n:,})"
    print(f"| {head} | executions/s | CPU ms/execution | Spool / it |")
    print("|---|---|---|---|")
    for name, runs in results.items():
        rates = [r["per_s"] for r in runs]
        cpu = [r["cpu_ms_per_exec"] for r in runs]
        ratio = f"{spool / statistics.median(rates):.2f}x" if spool else "-"
        print(f"| {name} | {spread(rates)} | {spread(cpu, 2)} | {ratio} |")


if __name__ == "__main__":
    main()
