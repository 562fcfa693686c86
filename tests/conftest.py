from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import pytest

from adminvms_dashboard.celery import app as celery_app

from .worker import WorkerProcess


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


def wait_until(predicate: Callable[[], object], timeout: float, message: str, worker=None):
    """Poll ``predicate`` until it returns something truthy; fail with the worker's log otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := predicate():
            return result
        time.sleep(0.1)
    log = f"\n--- worker log ---\n{worker.tail()}" if worker else ""
    pytest.fail(f"timed out after {timeout} s: {message}{log}")
