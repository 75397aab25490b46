# One entry per everyday task. `make demo` and `make test` are the two a newcomer needs.
PY := .venv/bin/python
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: setup demo up down status test reliability lint format bench bench-latency bench-triggers bench-quotas images

setup:
	@bash scripts/ensure-venv.sh
	@bash scripts/ensure-servers.sh

## Start the platform locally (left running) and run the hello demo; last line = execution JSON.
demo: setup
	@$(PY) scripts/platform_ctl.py up
	@$(PY) scripts/demo.py

up: setup
	@$(PY) scripts/platform_ctl.py up

down:
	@$(PY) scripts/platform_ctl.py down

status:
	@$(PY) scripts/platform_ctl.py status

## The whole suite: lint, unit, integration and end-to-end tests (the dashboard's in headless
## Chromium, installed if missing) on the real servers.
test: setup lint
	@bash scripts/ensure-browser.sh
	@$(PY) -m pytest

## The reliability suite: every fault test of reference/reliability.md §7 at full load, one
## line per fault at the end (about 25 minutes). `make test` runs the same tests at smoke load.
## The table goes to build/reliability.md; docs/reliability.md keeps it.
reliability: setup
	@SPOOL_RELIABILITY=full SPOOL_RELIABILITY_REPORT=build/reliability.md $(PY) -m pytest -m reliability

lint:
	@.venv/bin/ruff check .
	@.venv/bin/ruff format --check .
	@.venv/bin/mypy libs services tests scripts bench
	@.venv/bin/lint-imports

format:
	@.venv/bin/ruff format .
	@.venv/bin/ruff check --fix .

## Spool against Celery, Dramatiq and the raw pipeline, then latency, scale and autoscaling
## (about 25 minutes on 2 cores; run on a quiet machine). Results: docs/benchmarks.md.
bench: setup
	@.venv/bin/python -m pip install -q -e '.[dev,bench]'
	@$(PY) bench/compare.py --rounds 3
	@$(PY) bench/spool_bench.py latency -n 1000
	@$(PY) bench/peers.py celery-latency -n 1000
	@$(PY) bench/peers.py raw-latency -n 1000
	@$(PY) bench/spool_bench.py throughput -n 20000 --services 100
	@$(PY) bench/spool_bench.py throughput -n 20000 --stored 1000000
	@$(PY) bench/spool_bench.py autoscale -n 5
	@$(PY) bench/trigger_matching.py --triggers 10000 --events 100000

## Create→success latency of the hello execution over 200 sequential runs (needs `make up`).
bench-latency: setup
	@$(PY) bench/latency_hello.py --runs 200

bench-triggers: setup
	@$(PY) bench/trigger_matching.py --triggers 10000 --events 100000
	@$(PY) bench/trigger_matching.py --triggers 10000 --events 100000 --one-project --pinned

## The rate limit (429) and queue cap (503) under load, T30: about 2 minutes on its own platform.
## Results: bench/results/quota_load.json and docs/benchmarks.md.
bench-quotas: setup
	@$(PY) bench/quota_load.py

## The container images spool-runner and spool-control-plane, built with buildah from Debian
## packages (scripts/build-images.sh; needs root; reruns skip what is up to date).
images:
	@bash scripts/ensure-venv.sh
	@nice -n 10 bash scripts/build-images.sh
