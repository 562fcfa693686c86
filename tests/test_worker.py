"""A real Celery worker process on the real Redis broker, driven through the REST API."""

from __future__ import annotations

import pytest

from instances.drivers.sim.models import SimServer
from instances.models import Instance, InstanceAction

from .conftest import wait_until

pytestmark = pytest.mark.worker


def _status(client, instance_id) -> dict:
    return client.get(f"/api/v1/instances/{instance_id}/").json()


def _settled(client, instance_id, status):
    def check():
        body = _status(client, instance_id)
        return body if body["status"] == status and not body["task_state"] else None

    return check


def test_lifecycle_through_the_api_with_a_real_worker(demo, api, workers):
    # Small but non-zero delays, so every transition goes through polling
    # (the task re-enqueues itself with a countdown through Redis).
    worker = workers(
        ADMINVMS_SIM_BOOT_SECONDS="0.4",
        ADMINVMS_SIM_REBOOT_SECONDS="0.4",
        ADMINVMS_SIM_STOP_SECONDS="0.4",
        ADMINVMS_SIM_DELETE_SECONDS="0.4",
        ADMINVMS_POLL_INTERVAL="0.2",
    )
    client = api(demo.alice)

    launched = client.post("/api/v1/instances/", {"name": "web-1"}, format="json")
    assert launched.status_code == 202, launched.content
    iid = launched.json()["id"]
    assert launched.json()["status"] == "BUILDING"
    body = wait_until(_settled(client, iid, "ACTIVE"), 30, "launch to ACTIVE", worker)
    assert body["category"] == "standard" and body["addresses"]["project"]

    def act(payload, expected):
        response = client.post(f"/api/v1/instances/{iid}/action/", payload, format="json")
        assert response.status_code == 202, response.content
        return wait_until(_settled(client, iid, expected), 30, f"{payload} to {expected}", worker)

    act({"action": "reboot"}, "ACTIVE")
    act({"action": "stop"}, "STOPPED")
    act({"action": "start"}, "ACTIVE")

    assert client.delete(f"/api/v1/instances/{iid}/").status_code == 202
    wait_until(_settled(client, iid, "DELETED"), 30, "terminate to DELETED", worker)
    assert not SimServer.objects.filter(instance_uuid=iid).exists()

    actions = list(InstanceAction.objects.filter(instance_id=iid).values_list("action", "status"))
    assert sorted(actions) == sorted(
        [("launch", "succeeded"), ("reboot", "succeeded"), ("stop", "succeeded"), ("start", "succeeded"),
         ("terminate", "succeeded")]
    )  # fmt: skip
    events = client.get(f"/api/v1/instances/{iid}/events/").json()["results"]
    assert [e["event"] for e in events if e["action"] == "launch"] == ["requested", "spawning", "finished"]


def test_worker_killed_mid_launch_makes_exactly_one_server(demo, api, workers):
    # The sim's create call answers 4 s after the server exists: the worker is
    # killed in that window, after the effect and before it could record it.
    first = workers(ADMINVMS_SIM_API_LATENCY="4")
    client = api(demo.alice)
    launched = client.post("/api/v1/instances/", {"name": "survivor", "category": "vsa"}, format="json")
    assert launched.status_code == 202, launched.content
    iid = launched.json()["id"]

    wait_until(lambda: SimServer.objects.filter(instance_uuid=iid).exists(), 30, "server created", first)
    first.kill()
    instance = Instance.objects.get(pk=iid)
    assert instance.backend_id == ""  # the dead worker never recorded its server
    assert instance.status == "BUILDING"

    # A new worker gets the message back after the visibility timeout (10 s here)
    # and its launch finds the server made before instead of making a second one.
    second = workers()
    body = wait_until(_settled(client, iid, "ACTIVE"), 60, "redelivered launch to ACTIVE", second)
    servers = list(SimServer.objects.filter(instance_uuid=iid))
    assert len(servers) == 1
    assert Instance.objects.get(pk=iid).backend_id == str(servers[0].pk)
    assert body["restricted"] is True


def test_beat_probes_and_heals_an_appliance_on_its_own(demo, api, workers):
    """Nobody calls a service here: the worker's beat probes the vsa, finds it dead and heals it."""
    vsa = demo.categories["vsa"]
    assert (vsa.health_check_port, vsa.auto_heal) == (8080, True)  # as the demo seeds it
    vsa.health_check_grace = 0  # the simulated appliance answers as soon as it boots
    vsa.save()
    worker = workers(
        beat=True,
        ADMINVMS_HEALTH_CHECK_INTERVAL="0.5",
        ADMINVMS_FLEET_INTERVAL="0.5",
        ADMINVMS_HEALTH_CHECK_RETRY="0.2",
        ADMINVMS_POLL_INTERVAL="0.2",
    )
    client = api(demo.alice)
    launched = client.post("/api/v1/instances/", {"name": "array", "category": "vsa"}, format="json")
    assert launched.status_code == 202, launched.content
    iid = launched.json()["id"]
    wait_until(_settled(client, iid, "ACTIVE"), 30, "launch to ACTIVE", worker)
    wait_until(lambda: Instance.objects.get(pk=iid).health == "healthy", 30, "first good probe", worker)
    first_server = Instance.objects.get(pk=iid).backend_id
    SimServer.objects.filter(pk=first_server).update(answers_probes=False)  # the appliance's process dies

    def healed():
        inst = Instance.objects.get(pk=iid)
        return inst if inst.generation == 1 and inst.status == "ACTIVE" and not inst.task_state else None

    inst = wait_until(healed, 60, "probed unhealthy and healed by the worker's beat", worker)
    assert inst.backend_id != first_server and not SimServer.objects.filter(pk=first_server).exists()
    assert inst.health == "healthy"
    history = list(inst.events.values_list("event", flat=True))
    assert history.index("health_failing") < history.index("health_unhealthy") < history.index("moved")


def test_the_worker_keeps_its_database_connection_and_outlives_losing_it(demo, api, workers):
    """A worker's pool child keeps its PostgreSQL connection from one task to the next (a new
    connection for each task cost more than the task: CELERY_DB_REUSE_MAX); when PostgreSQL drops it
    (a restart, an admin's pg_terminate_backend), the next task connects anew and runs."""
    from django.db import connection

    def others() -> set[int]:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            return {pid for (pid,) in cursor.fetchall()}

    worker = workers(ADMINVMS_SIM_BOOT_SECONDS="0")
    client = api(demo.alice)

    def launch(name: str) -> None:
        response = client.post("/api/v1/instances/", {"name": name}, format="json")
        assert response.status_code == 202, response.content
        wait_until(_settled(client, response.json()["id"], "ACTIVE"), 30, f"{name} to ACTIVE", worker)

    launch("first")
    kept = others()
    assert kept, "the worker holds no connection between tasks"
    launch("second")
    assert others() == kept  # the same server process: the connection was kept

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", [sorted(kept)])
    launch("third")
    third = InstanceAction.objects.get(instance__name="third", action="launch")
    assert third.status == "succeeded" and third.attempts == 1, (third.status, third.attempts, third.message)
    assert others().isdisjoint(kept)
