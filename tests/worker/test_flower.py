"""Flower, started against the test worker's broker, shows a bill run's tasks through its
own HTTP API."""

import ast

import pytest
import requests

from billing.models import BillRun
from core.enums import UserKind
from tasks.notifications import notifications_dispatch
from tests.worker.conftest import poll, seed_customers, wait_task, wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]


def flower_get(flower, path: str, **params):
    """A JSON answer from Flower's API, or None while it cannot give one."""
    try:
        response = requests.get(f"http://127.0.0.1:{flower.port}{path}", params=params,
                                timeout=5)
    except requests.RequestException:
        return None
    return response.json() if response.status_code == 200 else None


def test_flower_finds_the_bill_run_tasks(client_as, start_worker, start_flower):
    api, _ = client_as(UserKind.MANAGER)
    seed_customers(300)
    worker = start_worker()
    flower = start_flower()
    wait_until(lambda: flower_get(flower, "/api/workers") is not None, timeout=60,
               interval=0.25, watch=[flower], message="Flower's API to answer")

    # Flower listens to the worker's events: a task sent now shows up in its API.
    def probe_seen() -> bool:
        probe = notifications_dispatch.apply_async()
        return bool(poll(
            lambda: (flower_get(flower, f"/api/task/info/{probe.id}") or {}).get("state")
            == "SUCCESS", timeout=3,
        ))

    wait_until(probe_seen, timeout=60, interval=0, watch=[flower, worker],
               message="Flower to see the worker's task events")

    response = api.post("/customers/bills/generate?month=MAY&year=2030")
    assert response.status_code == 202, response.content
    task_id = response.json()["task_id"]
    assert wait_task(api, task_id, watch=[worker])["status"] == "SUCCESS"
    run = BillRun.objects.get(task_id=task_id)
    chunk_ids = set(run.chunks.values_list("pk", flat=True))
    assert len(chunk_ids) == run.chunks_total > 1

    execute = wait_until(
        lambda: (info := flower_get(flower, f"/api/task/info/{task_id}"))
        and info.get("state") == "SUCCESS" and info,
        timeout=30, watch=[flower], message="Flower to show the run's task",
    )
    assert execute["name"] == "bills.run_execute"
    assert ast.literal_eval(execute["args"]) == [run.pk]
    assert execute["worker"] == worker.hostname

    def chunks_listed():
        listed = flower_get(flower, "/api/tasks", taskname="bills.run_chunk",
                            state="SUCCESS") or {}
        mine = {
            uuid: task for uuid, task in listed.items()
            if task.get("root_id") == task_id
        }
        return mine if len(mine) == len(chunk_ids) else None

    chunks = wait_until(chunks_listed, timeout=30, interval=0.5, watch=[flower],
                        message="Flower to list every chunk task of the run")
    assert {ast.literal_eval(task["args"])[0] for task in chunks.values()} == chunk_ids
    assert {task["parent_id"] for task in chunks.values()} == {task_id}
    assert {task["worker"] for task in chunks.values()} == {worker.hostname}
    types = flower_get(flower, "/api/task/types")
    assert {"bills.run_execute", "bills.run_chunk"} <= set(
        types["task-types"]
    )

