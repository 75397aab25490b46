"""Events matched per second by the trigger engine's index, on one core, no I/O.

    .venv/bin/python bench/trigger_matching.py --triggers 10000 --events 200000

Builds `--triggers` event triggers with mixed filters (Dataloop-style item filters with the
item defaults, mimetype globs, directory pins, dataset pins, `$or` of labels, `$in`, numeric
ranges, `$exists`, filters pinning nothing) spread over `--projects` projects, all seven
resources and their actions, then matches `--events` generated events against the index and
reports events/s, matches per event and candidates inspected per event. `--one-project` puts
every trigger in a single project (the worst case of the (project, resource, action) buckets).
Seeded: the same arguments give the same workload.
"""

from __future__ import annotations

import argparse
import random
import time
from typing import Any

from spool_common.models import Trigger, TriggerAction, TriggerResource
from spool_trigger_engine.index import TriggerIndex

ACTIONS: dict[TriggerResource, list[TriggerAction]] = {
    TriggerResource.ITEM: [TriggerAction.CREATED, TriggerAction.UPDATED, TriggerAction.DELETED],
    TriggerResource.DATASET: [TriggerAction.CREATED, TriggerAction.UPDATED],
    TriggerResource.ANNOTATION: [TriggerAction.CREATED, TriggerAction.UPDATED],
    TriggerResource.ITEM_STATUS: [TriggerAction.UPDATED],
    TriggerResource.TASK: [TriggerAction.CREATED, TriggerAction.STATUS_CHANGED],
    TriggerResource.ASSIGNMENT: [TriggerAction.CREATED],
    TriggerResource.MODEL: [TriggerAction.CREATED, TriggerAction.UPDATED],
}
MIMES = ["image/jpeg", "image/png", "video/mp4", "text/plain", "application/json"]
LABELS = ["cat", "dog", "bird", "car", "tree", "person"]


def _filter(
    rng: random.Random, resource: TriggerResource, datasets: int, pinned: bool
) -> dict[str, Any]:
    """One of seven filter shapes; with `pinned`, nine in ten pin a dataset (the common case
    of one project with many triggers: one per dataset or folder)."""
    if pinned and rng.random() < 0.9:
        return {"datasetId": f"ds{rng.randrange(datasets)}", "label": rng.choice(LABELS)}
    kind = rng.randrange(7)
    if kind == 0:
        return {}
    if kind == 1:
        return {"metadata.system.mimetype": rng.choice(["image/*", "video/*", "text/*"])}
    if kind == 2:
        return {
            "$and": [{"dir": f"/d{rng.randrange(50)}"}, {"metadata.system.mimetype": "image/*"}]
        }
    if kind == 3:
        return {"datasetId": f"ds{rng.randrange(datasets)}"}
    if kind == 4:
        return {"$or": [{"label": rng.choice(LABELS)}, {"label": rng.choice(LABELS)}]}
    if kind == 5:
        return {"score": {"$gte": rng.random()}, "label": {"$in": rng.sample(LABELS, 3)}}
    return {"metadata.user.reviewed": {"$exists": rng.random() < 0.5}, "name": "*.jpg"}


def build(n: int, projects: int, datasets: int, rng: random.Random, pinned: bool) -> TriggerIndex:
    index = TriggerIndex()
    resources = list(ACTIONS)
    for i in range(n):
        resource = rng.choice(resources)
        actions = rng.sample(ACTIONS[resource], rng.randint(1, len(ACTIONS[resource])))
        spec = {
            "resource": resource.value,
            "actions": [a.value for a in actions],
            "filter": _filter(rng, resource, datasets, pinned),
            "operation": {"type": "function", "serviceId": f"s{i % 100}"},
        }
        body = {
            "id": f"t{i}",
            "name": f"t{i}",
            "projectId": f"p{rng.randrange(projects)}",
            "spec": spec,
        }
        index.put(Trigger.model_validate(body))
    return index


def events(
    n: int, projects: int, datasets: int, rng: random.Random
) -> list[tuple[str, TriggerResource, TriggerAction, dict[str, Any]]]:
    out = []
    resources = list(ACTIONS)
    for i in range(n):
        resource = rng.choice(resources)
        entity = {
            "id": f"e{i}",
            "name": f"f{i}.{rng.choice(['jpg', 'png', 'mp4'])}",
            "dir": f"/d{rng.randrange(50)}",
            "datasetId": f"ds{rng.randrange(datasets)}",
            "type": "file",
            "hidden": rng.random() < 0.05,
            "label": rng.choice(LABELS),
            "score": rng.random(),
            "metadata": {
                "system": {"mimetype": rng.choice(MIMES)},
                "user": {"reviewed": True} if rng.random() < 0.5 else {},
            },
        }
        out.append((f"p{rng.randrange(projects)}", resource, rng.choice(ACTIONS[resource]), entity))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--triggers", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--projects", type=int, default=100)
    parser.add_argument("--datasets", type=int, default=1_000)
    parser.add_argument("--one-project", action="store_true")
    parser.add_argument("--pinned", action="store_true", help="most filters pin a dataset")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    projects = 1 if args.one_project else args.projects
    rng = random.Random(args.seed)  # noqa: S311 - a reproducible workload, not a secret
    started = time.perf_counter()
    index = build(args.triggers, projects, args.datasets, rng, args.pinned)
    built = time.perf_counter() - started
    workload = events(args.events, projects, args.datasets, rng)
    matched = 0
    started = time.perf_counter()
    for project, resource, action, entity in workload:
        matched += len(index.matching(project, resource, action, entity))
    elapsed = time.perf_counter() - started
    print("| triggers | projects | events | build s | events/s | matches/event |")
    print("|---:|---:|---:|---:|---:|---:|")
    print(
        f"| {args.triggers:,} | {projects:,} | {args.events:,} | {built:.2f} | "
        f"{args.events / elapsed:,.0f} | {matched / args.events:.2f} |"
    )


if __name__ == "__main__":
    main()
