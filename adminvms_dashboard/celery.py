"""The Celery application: configured from Django settings (``CELERY_*``)."""

import os

from celery import Celery
from celery.signals import celeryd_init, task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "adminvms_dashboard.settings")

app = Celery("adminvms")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# The socket timeouts of the broker (settings: ADMINVMS_BROKER_TIMEOUT) are for the processes that
# only send tasks, whose requests must answer while Redis is paused. A worker waits for Redis
# instead: when the acknowledgement of a finished task times out, kombu keeps its delivery tag, the
# prefetch limit (1) stays reached, and the worker takes no task again, even once Redis is back
# (seen with a Redis paused for 6 s, kombu 5.7.0). Waiting, it carries on when Redis answers.
WORKER_DROPS_TRANSPORT_OPTIONS = ("socket_timeout", "socket_connect_timeout")


@celeryd_init.connect
def _worker_waits_for_the_broker(conf, **kwargs) -> None:
    options = conf.broker_transport_options or {}
    conf.broker_transport_options = {k: v for k, v in options.items() if k not in WORKER_DROPS_TRANSPORT_OPTIONS}


def _kombu_restores_through_a_closed_connection() -> bool:
    """kombu 5.7.0 and earlier: the known-broken versions (none newer was published when this was written)."""
    import kombu

    return tuple(kombu.VERSION[:3]) <= (5, 7, 0)


def _patch_kombu_redis_restore_unacked() -> None:
    """When Redis goes away while a task runs, Celery closes the consumer's connection; kombu's Redis
    channel, closing, restores the unacknowledged messages through a transport whose ``client`` the
    connection has already dropped: ``AttributeError: 'NoneType' object has no attribute 'hostname'``
    (``QoS.restore_unacked`` → ``Channel._connparams``), which is no connection error, so the worker
    exits instead of reconnecting (seen in ``make soak``'s outage; celery/kombu#582 is the same
    ``_connparams`` failure on another closing path). No kombu release fixes it yet (5.7.0 is the newest).
    Nothing can be restored through a closed connection: the messages stay in Redis's unacked hash
    and its visibility-timeout sweep delivers them again, as for a worker that was killed."""
    from kombu.transport import redis as kombu_redis

    restore_unacked = kombu_redis.QoS.restore_unacked

    def restore_unacked_if_connected(self, client=None):
        transport = self.channel.connection
        if client is None and (transport is None or transport.client is None):
            self._delivered.clear()
            return None
        return restore_unacked(self, client)

    kombu_redis.QoS.restore_unacked = restore_unacked_if_connected


if _kombu_restores_through_a_closed_connection():
    _patch_kombu_redis_restore_unacked()


@task_prerun.connect
def _check_the_kept_database_connection(task, **kwargs) -> None:
    """The worker keeps its database connection between tasks (CELERY_DB_REUSE_MAX): check it once
    before each task (Django's health check, CONN_HEALTH_CHECKS), so that a connection PostgreSQL
    dropped meanwhile (a restart) is made anew instead of failing the task's first query."""
    from django.db import connections

    if getattr(task.request, "is_eager", False):
        return  # run in the caller's process, on the caller's connection
    for connection in connections.all(initialized_only=True):
        connection.health_check_done = False
