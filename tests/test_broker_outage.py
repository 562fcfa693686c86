"""The broker going away under a real worker and a web request: stopped, then paused.

Every test runs on a Redis of its own (``private_broker``: the shared one is never stopped) and
stops its worker first and its Redis last, whatever happens in between.
"""

from __future__ import annotations

import contextlib
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from instances.drivers.sim.models import SimServer
from instances.models import Instance, InstanceAction

from .conftest import wait_until

pytestmark = pytest.mark.worker


def _log_count(worker, text: str) -> int:
    return worker.log_path.read_text().count(text)


def _launch(client, name: str) -> str:
    response = client.post("/api/v1/instances/", {"name": name}, format="json")
    assert response.status_code == 202, response.content
    return response.json()["id"]


def _events(client, iid: str) -> list[str]:
    return [e["event"] for e in client.get(f"/api/v1/instances/{iid}/events/").json()["results"]]


def _alive_and(worker, predicate):
    """``predicate``, failing at once (with the worker's log) when the worker has exited."""

    def check():
        assert worker.proc.poll() is None, f"the worker exited:\n{worker.tail()}"
        return predicate()

    return check


def _active(iid: str):
    return lambda: Instance.objects.filter(pk=iid, status="ACTIVE", task_state="").exists()


# ``private_broker`` before ``workers``: the worker is stopped before its Redis is.
def test_a_worker_survives_a_redis_stop_and_start_and_runs_the_next_launch(demo, api, private_broker, workers):
    # A slow boot: the launch polls by re-enqueueing itself with a countdown, and the worker holds
    # that message, unacknowledged, while Redis stops. Closing its connection then restores it: the
    # path where kombu 5.7.0 raised AttributeError and the worker exited (adminvms_dashboard/celery.py).
    worker = workers(CELERY_BROKER_URL=private_broker.url, ADMINVMS_SIM_BOOT_SECONDS="6", ADMINVMS_POLL_INTERVAL="2")
    client = api(demo.alice)
    during = _launch(client, "during")
    wait_until(lambda: _log_count(worker, "run_action[") >= 3, 30, "the launch polls with a countdown", worker)
    connected = _log_count(worker, "Connected to redis://")

    private_broker.stop()
    # Down long enough for the worker to lose its connection and fail to reconnect three times
    # (Celery waits 2 s, then 4 s between the tries): about 6 s, counted in its log, not slept.
    lost = _alive_and(worker, lambda: _log_count(worker, "Connection to broker lost") >= 1)
    wait_until(lost, 15, "the worker sees the outage", worker)
    retried = _alive_and(worker, lambda: _log_count(worker, "Cannot connect to redis://") >= 3)
    wait_until(retried, 30, "three reconnections fail", worker)

    private_broker.start()
    wait_until(lambda: _log_count(worker, "Connected to redis://") > connected, 30, "the worker reconnects", worker)
    after = _launch(client, "after")
    # The launch under way when Redis stopped goes on too: its message comes back after the visibility
    # timeout (10 s for test workers), from Redis's unacked hash, which the append-only file kept.
    for iid in (after, during):
        wait_until(_active(iid), 40, "a launch after the outage, run by the same worker", worker)
    # Sent at once (redis-py reconnects this process's pooled connection) and consumed by the
    # worker that lived through the outage: not left waiting for the queue.
    assert "queue_unavailable" not in _events(client, after)
    assert worker.proc.poll() is None
    assert "CRITICAL" not in worker.log_path.read_text()


def test_a_launch_while_redis_is_paused_is_accepted_at_once_and_sent_once_it_answers(
    demo, api, private_broker, workers
):
    # Beat runs reconcile every second: it sends the actions that waited for the queue.
    worker = workers(beat=True, CELERY_BROKER_URL=private_broker.url, ADMINVMS_RECONCILE_INTERVAL="1")
    client = api(demo.alice)
    # This process now holds a pooled connection to Redis, as a web process in production does.
    warm = _launch(client, "warm")
    wait_until(_active(warm), 30, "launch before the pause", worker)

    # SIGSTOP: the kernel still accepts connections, nothing answers them (a Redis paused, swapping,
    # or behind a dead proxy). Without socket timeouts these requests never returned. The first
    # writes its task on the pooled connection and misses only the answer; that connection is then
    # dropped, and the second's new one never gets past its handshake: its task never reached Redis.
    answers = []

    def post_both() -> None:
        try:
            for name in ("written", "unsent"):
                started = time.monotonic()
                response = client.post("/api/v1/instances/", {"name": name}, format="json")
                answers.append((response, time.monotonic() - started))
        finally:
            connection.close()  # this thread's, or the test database cannot be dropped

    # From a thread, so that a request that would hang cannot hang the test: Redis resumes
    # after 25 s whatever happened, and the slow answer fails the assertion below.
    with ThreadPoolExecutor(max_workers=1) as pool:
        private_broker.proc.send_signal(signal.SIGSTOP)
        try:
            sending = pool.submit(post_both)
            with contextlib.suppress(TimeoutError):
                sending.result(timeout=25)
        finally:
            private_broker.proc.send_signal(signal.SIGCONT)
        sending.result(timeout=60)  # what the requests raised, if they did
    assert len(answers) == 2
    ids = []
    for response, elapsed in answers:
        assert response.status_code == 202, response.content
        assert elapsed < 10, f"a launch took {elapsed:.1f} s with Redis paused"
        ids.append(response.json()["id"])

    # Redis answers again: from here the worker may take the tasks at any moment.
    for iid in ids:
        wait_until(_active(iid), 45, "a launch accepted while Redis was paused", worker)
        # Recorded as waiting for the queue while Redis was paused. One launch, one server, whether
        # Redis delivered the task it took before pausing or reconcile sent it again (and the
        # second delivery found the launch under way or done).
        events = _events(client, iid)
        assert events[:2] == ["requested", "queue_unavailable"] and events.count("finished") == 1, events
        assert InstanceAction.objects.get(instance_id=iid).status == "succeeded"
        assert SimServer.objects.filter(instance_uuid=iid).count() == 1
    # The task that never reached Redis was sent again by reconcile once Redis answered.
    assert "queue_resent" in _events(client, ids[1])
    assert worker.proc.poll() is None
