"""Soak, the short version: kills, backend faults and a broker outage, checked by invariants.

The full soak (200 launches and terminations on sim and Docker, a 10 s outage, gunicorn under
load) is ``make soak`` (``python -m tests.soak``); these run in ``make test``. Every scenario runs on
a Redis of its own (the outage stops it; the shared one is never touched) and asserts invariants
only, never timings: no duplicate server, nothing transitional after reconcile, no accepted request
lost, no 5xx.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
import redis
from django.db.models import F
from django.utils import timezone

from instances.models import Instance

from .conftest import wait_until
from .soak import harness
from .soak.harness import Rig, broker_outage, lifecycles, soak_category

pytestmark = pytest.mark.worker

# Small delays everywhere, so that kills land between an effect and its record.
SLOW_SIM = {
    "ADMINVMS_SIM_BOOT_SECONDS": "0.5",
    "ADMINVMS_SIM_DELETE_SECONDS": "0.3",
    "ADMINVMS_SIM_API_LATENCY": "0.1",
    "ADMINVMS_FAULT_PAUSE_AFTER_CREATE": "0.2",
    "ADMINVMS_POLL_INTERVAL": "0.2",
}


@pytest.fixture
def rig(transactional_db, demo, broker_queue, private_broker, tmp_path):
    rig = Rig(broker_queue, tmp_path, private_broker)
    yield rig
    rig.close()


def _report(result) -> None:
    print(result)  # shown with -s, and with the failure


def test_a_launch_accepted_while_the_broker_is_down_completes_after_it_returns(demo, api, workers, private_broker):
    worker = workers(beat=True, CELERY_BROKER_URL=private_broker.url, ADMINVMS_RECONCILE_INTERVAL="1")
    client = api(demo.alice)
    before = client.post("/api/v1/instances/", {"name": "before"}, format="json")
    assert before.status_code == 202, before.content
    wait_until(lambda: Instance.objects.get(pk=before.json()["id"]).status == "ACTIVE", 30, "first launch", worker)

    private_broker.stop()
    launched = client.post("/api/v1/instances/", {"name": "during"}, format="json")
    # Accepted: the instance and its action are written; the task is sent once the broker is back.
    assert launched.status_code == 202, launched.content
    stopped = client.post(f"/api/v1/instances/{before.json()['id']}/action/", {"action": "stop"}, format="json")
    assert stopped.status_code == 202, stopped.content
    iid = launched.json()["id"]
    events = [e["event"] for e in client.get(f"/api/v1/instances/{iid}/events/").json()["results"]]
    assert events == ["requested", "queue_unavailable"]

    private_broker.start()
    wait_until(lambda: Instance.objects.get(pk=iid).status == "ACTIVE", 60, "launch after the outage", worker)
    wait_until(lambda: Instance.objects.get(pk=before.json()["id"]).status == "STOPPED", 60, "stop", worker)
    events = [e["event"] for e in client.get(f"/api/v1/instances/{iid}/events/").json()["results"]]
    assert events[:3] == ["requested", "queue_unavailable", "queue_resent"], events


def test_launches_and_terminations_while_workers_are_killed(rig, demo, settings):
    # A whole worker killed right after Redis handed it a message, before kombu recorded it as
    # unacknowledged, loses that message (seen about once in ten kills): the action then ends at its
    # deadline (``expired``), the product's net. A short deadline keeps that within the test.
    settings.ADMINVMS = {**settings.ADMINVMS, "ACTION_TIMEOUT": 45}
    category, project = soak_category(backend="sim")
    result = lifecycles(
        rig, scenario="kills", user=demo.admin, category=category, project=project, n=30, rate=5,
        settle_timeout=90, worker_count=2, worker_env=SLOW_SIM, kill_after=(4, 12, 20),
        kill_kinds=("child", "worker", "child"), seed=14,
    )  # fmt: skip
    _report(result)
    assert (result.kills, result.child_kills) == (1, 2)
    assert result.launches == 30 and result.terminations == 30
    # Nothing fails but by its deadline, and only what a killed worker held.
    assert result.check(no_error=True, max_expired=result.kills).broken == []
    assert result.deleted + result.expired >= 30


def test_every_action_ends_with_a_fifth_of_backend_calls_failing(rig, demo):
    category, project = soak_category(backend="sim")
    result = lifecycles(
        rig, scenario="faults 20%", user=demo.admin, category=category, project=project, n=20, rate=5,
        settle_timeout=90, worker_count=2, app="tests.soak.celery_app",
        worker_env={
            **SLOW_SIM, "ADMINVMS_SOAK_FAULT_RATE": "0.2", "ADMINVMS_SOAK_TIMEOUT_SECONDS": "0.3",
            "ADMINVMS_TASK_MAX_RETRIES": "5", "ADMINVMS_ACTION_TIMEOUT": "60",
            # Retries wait up to 16 s: longer than the kill scenarios' visibility timeout.
            "ADMINVMS_VISIBILITY_TIMEOUT": "60",
        },
    )  # fmt: skip
    _report(result)
    assert result.launches == 20
    assert result.check(max_retry=5).broken == []


def test_launches_while_the_broker_is_down_complete_when_it_is_back(rig, demo):
    category, project = soak_category(backend="sim")
    result = broker_outage(
        rig, user=demo.admin, category=category, project=project, duration=10, outage_at=2, outage=5, rate=4,
        settle_timeout=60, worker_env=SLOW_SIM,
    )  # fmt: skip
    _report(result)
    assert result.answers["outage 202"] + result.answers["outage 503"] > 0  # requests were made while it was down
    assert result.check(no_error=True).broken == []
    assert result.deleted == result.launches


def test_the_web_tier_under_concurrent_clients_answers_no_5xx(rig, demo):
    from .worker import test_database_url

    projects = {"admin": "acme", "alice": "acme", "bob": "globex"}
    result = harness.web_load(
        rig, users={name: getattr(demo, name) for name in projects}, projects=projects, clients=10, seconds=6,
        database_url=test_database_url(), settle_timeout=60,
    )  # fmt: skip
    _report(result)
    assert result.answers[200] > 0 and result.answers[202] > 0
    assert result.check(no_error=True).broken == []
    assert result.active == result.launches


def test_an_action_waiting_for_the_queue_is_sent_when_it_is_back_not_expired(
    transactional_db, demo, api, private_broker, broker_queue, settings
):
    from instances import services
    from instances.models import InstanceAction

    private_broker.stop()
    launched = api(demo.alice).post("/api/v1/instances/", {"name": "waits"}, format="json")
    assert launched.status_code == 202, launched.content
    action = InstanceAction.objects.get(instance_id=launched.json()["id"])
    # The broker stays down for twice the action's time: as if all of it happened that long ago.
    ago = timedelta(seconds=2 * settings.ADMINVMS["ACTION_TIMEOUT"])
    InstanceAction.objects.filter(pk=action.pk).update(created_at=F("created_at") - ago, deadline=F("deadline") - ago)
    action.events.update(created_at=F("created_at") - ago)
    assert action.deadline - ago < timezone.now()
    # Reconcile does not end it: it waits for the queue.
    assert services.actions_expire(grace_seconds=0) == 0
    action.refresh_from_db()
    assert action.status == "pending"

    private_broker.start()
    assert services.actions_expire(grace_seconds=0) == 0
    action.refresh_from_db()
    # Sent once the broker is back, with as much time ahead as it had when it was accepted.
    assert action.status == "pending" and action.deadline > timezone.now()
    events = list(action.events.order_by("created_at", "id").values_list("event", flat=True))
    assert events == ["requested", "queue_unavailable", "queue_resent", "queue_unavailable", "queue_resent"]
    with redis.Redis.from_url(private_broker.url) as broker:
        assert broker.llen(broker_queue) == 1  # its task, waiting for a worker
    assert services.actions_expire(grace_seconds=0) == 0  # sent once, not again
    assert action.events.filter(event="queue_resent").count() == 2
