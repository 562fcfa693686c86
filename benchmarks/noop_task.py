"""The floor of the lifecycle benchmark: a Celery task that does nothing but say it ran.

Loaded by the benchmark's workers (``--include benchmarks.noop_task``) beside the real tasks, so
that it goes through the same broker, queue, acknowledgement settings and worker processes.
"""

from __future__ import annotations

import redis
from celery import shared_task
from django.conf import settings

_client: redis.Redis | None = None


@shared_task(name="benchmarks.noop", ignore_result=True)
def noop(counter: str) -> None:
    """One Redis INCR, so that the benchmark sees it finish (about 0.1 ms: a no-op next to a task's dispatch)."""
    global _client
    if _client is None:
        _client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    _client.incr(counter)
