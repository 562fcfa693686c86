from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import pytest

from adminvms_dashboard.celery import app as celery_app

from .worker import RedisServer, WorkerProcess


@pytest.fixture
def broker_queue():
    """Send tasks from this test process through the real broker to a queue of this test's own."""
    queue = f"adminvms-test-{uuid.uuid4().hex[:10]}"
    saved = celery_app.conf.task_always_eager, celery_app.conf.task_default_queue
    celery_app.conf.task_always_eager = False
    celery_app.conf.task_default_queue = queue
    yield queue
    celery_app.conf.task_always_eager, celery_app.conf.task_default_queue = saved


@pytest.fixture
def workers(transactional_db, broker_queue, tmp_path):
    """``workers(**env)`` starts a real worker process on the test's queue; all are stopped after."""
    started: list[WorkerProcess] = []

    def start(*, beat: bool = False, **env: str) -> WorkerProcess:
        worker = WorkerProcess(broker_queue, tmp_path, beat=beat, **env).start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def private_broker(broker_queue, tmp_path):
    """A Redis of this test's own (never the shared one), which the test may stop and start.

    This test process sends its tasks there; workers started with ``CELERY_BROKER_URL=private_broker.url``
    consume from it. Stopped after the test.
    """
    server = RedisServer(tmp_path).start()
    saved = celery_app.conf.get("broker_write_url")

    def point_at(url: str | None) -> None:
        # The write URL: ``broker_url`` reads CELERY_BROKER_URL from the environment first. Celery
        # caches the connection and producer pools on first use; new ones for the new URL.
        celery_app.conf.broker_write_url = url
        celery_app._pool = None
        celery_app.amqp._producer_pool = None

    point_at(server.url)
    yield server
    point_at(saved)
    server.stop()


def wait_until(predicate: Callable[[], object], timeout: float, message: str, worker=None):
    """Poll ``predicate`` until it returns something truthy; fail with the worker's log otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := predicate():
            return result
        time.sleep(0.1)
    log = f"\n--- worker log ---\n{worker.tail()}" if worker else ""
    pytest.fail(f"timed out after {timeout} s: {message}{log}")
