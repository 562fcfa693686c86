"""Celery tasks: thin callers of the service layer.

``run_action`` runs every action of the operation table: it takes the action's
primary key, advances it one step, and re-enqueues itself with a countdown while
the backend is still busy. No task sleeps, so a task never outlives the broker's
visibility timeout. Deliveries are idempotent (``acks_late`` with
``reject_on_worker_lost``: a killed worker's task comes back and the service
finds what the first try did).
"""

from __future__ import annotations

import logging
import time

from celery import Task, shared_task
from django.conf import settings

from . import services
from .drivers.base import BackendUnavailable
from .drivers.registry import enabled_backends

log = logging.getLogger(__name__)


@shared_task(name="instances.tasks.run_action", bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=None)
def run_action(self: Task, action_id: str) -> None:
    try:
        countdown = services.action_step(action_id=action_id)
        while countdown is not None and self.request.is_eager:
            # Eager mode (tests, a shell) has no broker to come back through.
            time.sleep(countdown)
            countdown = services.action_step(action_id=action_id)
    except BackendUnavailable as exc:
        retries = self.request.retries
        if retries < settings.ADMINVMS["TASK_MAX_RETRIES"]:
            # Not ``self.retry``: when the broker is down too, it rejects the message (lost);
            # ``action_send`` leaves the action waiting for the queue instead.
            countdown = min(2**retries, 30)
            log.info("action %s: backend unavailable (%s); retry %s in %s s", action_id, exc, retries + 1, countdown)
            services.records.action_send(action_id=action_id, countdown=countdown, retries=retries + 1)
            return
        services.action_fail(action_id=action_id, fault=f"The backend did not answer after {retries + 1} tries: {exc}")
        return
    except Exception as exc:  # never leave an instance in a transitional state
        log.exception("action %s failed unexpectedly", action_id)
        services.action_fail(action_id=action_id, fault=f"Internal error while running the action: {exc}")
        return
    if countdown is not None:
        services.records.action_send(action_id=action_id, countdown=countdown)


@shared_task(name="instances.tasks.reconcile", acks_late=True, ignore_result=True)
def reconcile() -> None:
    for run in services.instances_reconcile():
        log.info(
            "reconcile %s: checked %s, updated %s, vanished %s, orphans %s",
            run.backend, run.checked, run.updated, len(run.vanished), len(run.orphans),
        )  # fmt: skip


@shared_task(name="instances.tasks.sync_catalog", acks_late=True, ignore_result=True)
def sync_catalog() -> None:
    for backend in enabled_backends():
        counts = services.catalog_sync(backend=backend)
        log.info("catalog %s: %s", backend, counts)


@shared_task(name="instances.tasks.health_check", acks_late=True, ignore_result=True, expires=60)
def health_check() -> None:
    report = services.health_check()
    if report.probed:
        log.info(
            "health: probed %s, healthy %s, failing %s, unhealthy %s",
            report.probed, report.healthy, report.failing, report.unhealthy,
        )  # fmt: skip


@shared_task(name="instances.tasks.fleet", acks_late=True, ignore_result=True, expires=60)
def fleet() -> None:
    report = services.fleet_run()
    if report.breakers_opened:
        log.warning("auto-heal paused: breakers opened for %s", ", ".join(report.breakers_opened))
    if report.heals or report.replacements or report.spares_launched or report.spares_retired:
        log.info(
            "fleet: %s heals, %s replacements, %s spares launched, %s retired",
            report.heals, report.replacements, report.spares_launched, report.spares_retired,
        )  # fmt: skip


@shared_task(name="instances.tasks.counts", acks_late=True, ignore_result=True, expires=60)
def counts() -> None:
    """The console overview's counts of a large fleet (``services.counts``)."""
    services.counts_take()
