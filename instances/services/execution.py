"""The worker side: running an action step by step against its backend.

The one Celery task calls ``action_step`` until it returns ``None``; every way
out ends the action (and its instance) in a terminal state, through ``_close``.
What an action calls and waits for comes from its row of the operation table.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from .. import operations
from ..choices import ActionStatus, Status, TaskState
from ..drivers.base import LOCK_REASON, DriverError, FlavorSpec, ServerInfo, ServerNotFound, ServerSpec, ServerStatus
from ..drivers.registry import get_driver
from ..models import Instance, InstanceAction
from .records import Result, conf, event_record

log = logging.getLogger(__name__)


def _spec(instance: Instance) -> ServerSpec:
    category, flavor, image = instance.category, instance.flavor, instance.image
    return ServerSpec(
        instance_id=str(instance.pk),
        name=instance.name,
        kind=category.kind,
        project=instance.project.slug,
        project_backend_id=instance.project.keystone_id,
        category=category.slug,
        managed=category.is_managed,
        flavor=FlavorSpec(flavor.name, flavor.vcpus, flavor.ram_mb, flavor.disk_gb, flavor.backend_id)
        if flavor
        else None,
        image=image.reference if image else "",
        image_name=image.name if image else "",
        network_placement=category.network_placement,
        availability_zone=instance.availability_zone,
        anti_affinity=category.anti_affinity,
        gui_port=category.gui_port,
        metadata={k: str(v) for k, v in instance.metadata.items()},
    )


def _close(action_id, *, ok: bool, status: str, message: str = "", info: ServerInfo | None = None) -> None:
    """Finish an action once, whatever number of deliveries race to do it."""
    with transaction.atomic():
        action = InstanceAction.objects.select_for_update().select_related("instance").get(pk=action_id)
        if not action.is_open:
            return
        now = timezone.now()
        action.status = ActionStatus.SUCCEEDED if ok else ActionStatus.FAILED
        action.message = message
        action.finished_at = now
        action.save(update_fields=["status", "message", "finished_at"])
        changes: dict = {"status": status, "task_state": "", "updated_at": now, "fault": "" if ok else message}
        if info is not None:
            changes.update(host=info.host, addresses=info.addresses, management_endpoint=info.management_endpoint)
        if ok and operations.get(action.action).creates:
            changes["launched_at"] = now
        if status == Status.DELETED:
            changes["deleted_at"] = now
        Instance.objects.filter(pk=action.instance_id).update(**changes)
        event_record(
            action.instance_id,
            action,
            "finished" if ok else "failed",
            Result.SUCCESS if ok else Result.ERROR,
            message or f"{action.action} finished: {status}",
        )


def action_fail(*, action_id, fault: str) -> None:
    """End an action in ERROR with a fault a human understands (never stuck)."""
    log.warning("action %s failed: %s", action_id, fault)
    _close(action_id, ok=False, status=Status.ERROR, message=fault)


def _create(action: InstanceAction, instance: Instance, driver) -> ServerInfo:
    """The launch's one create call; idempotent, so a redelivered task finds the server an earlier try made."""
    Instance.objects.filter(pk=instance.pk).update(task_state=TaskState.SPAWNING)
    event_record(instance.pk, action, "spawning", message=f"creating the server on backend '{instance.backend}'")
    info = driver.create(_spec(instance))
    if pause := conf("FAULT_PAUSE_AFTER_CREATE"):
        # Fault injection for tests: a worker may die here, after the server exists, before we know it.
        time.sleep(pause)
    Instance.objects.filter(pk=instance.pk).update(
        backend_id=info.backend_id,
        host=info.host,
        addresses=info.addresses,
        management_endpoint=info.management_endpoint,
        updated_at=timezone.now(),
    )
    return info


def _call_backend(row: operations.Operation, action: InstanceAction, instance: Instance, driver) -> ServerInfo | None:
    """Make the action's one backend call, once; then report the server's state.

    ``None`` means the server is gone. A redelivered task finds
    ``backend_called`` set (or, for a launch, the server by its stamp) and only
    polls.
    """
    backend_id = instance.backend_id
    if row.creates:
        return driver.get(backend_id) if backend_id else _create(action, instance, driver)
    if not backend_id:
        # The launch may have made a server without living to record it.
        found = driver.find(str(instance.pk))
        if found is None:
            return None
        backend_id = found.backend_id
    if not action.backend_called:
        getattr(driver, row.driver_call)(backend_id, **row.clean_params(action.params))
        InstanceAction.objects.filter(pk=action.pk).update(backend_called=True)
        event_record(instance.pk, action, "backend_called", message=f"{row.name} sent to '{instance.backend}'")
    return driver.get(backend_id)


def action_step(*, action_id) -> float | None:
    """Advance an action by one step.

    Returns the number of seconds after which the task should poll again, or
    ``None`` when the action has ended. Transient backend errors
    (``BackendUnavailable``) propagate, so the task retries with backoff; every
    other failure ends the action in ERROR.
    """
    try:
        action = InstanceAction.objects.select_related(
            "instance__category", "instance__project", "instance__flavor", "instance__image"
        ).get(pk=action_id)
    except InstanceAction.DoesNotExist:
        log.warning("action %s does not exist; nothing to do", action_id)
        return None
    if not action.is_open:
        return None  # a duplicate delivery of an action that already ended
    instance, row = action.instance, operations.get(action.action)
    now = timezone.now()
    if action.status == ActionStatus.PENDING:
        InstanceAction.objects.filter(pk=action.pk, status=ActionStatus.PENDING).update(
            status=ActionStatus.RUNNING, started_at=now
        )
    InstanceAction.objects.filter(pk=action.pk).update(attempts=action.attempts + 1)
    if now > action.deadline:
        action_fail(
            action_id=action.pk,
            fault=f"{action.action} did not finish within {int(conf('ACTION_TIMEOUT'))} s; "
            f"the backend '{instance.backend}' did not reach the expected state.",
        )
        return None

    driver = get_driver(instance.backend)
    try:
        info = _call_backend(row, action, instance, driver)
    except ServerNotFound:
        info = None
    except DriverError as exc:
        if exc.transient:
            raise
        action_fail(action_id=action.pk, fault=str(exc))
        return None

    if info is None:
        if row.deletes:
            _close(action.pk, ok=True, status=Status.DELETED, message="server deleted")
        else:
            action_fail(action_id=action.pk, fault=f"The server vanished from backend '{instance.backend}'.")
        return None
    if info.status == ServerStatus.ERROR or (
        info.fault and info.status == ServerStatus.STOPPED and row.awaits == ServerStatus.ACTIVE
    ):
        # ERROR, or a container whose process exited as it started: no use waiting for ACTIVE.
        action_fail(action_id=action.pk, fault=info.fault or f"The backend '{instance.backend}' reported ERROR.")
        return None
    if row.awaits is not None and info.status == row.awaits:
        if row.locks_managed and instance.category.is_managed and not info.locked:
            # Provider-managed and appliance servers are locked, so nobody bypasses the dashboard (rule 3).
            try:
                driver.lock(info.backend_id, reason=LOCK_REASON)
            except DriverError as exc:
                if exc.transient:
                    raise
                action_fail(action_id=action.pk, fault=f"The server runs but could not be locked: {exc}")
                return None
            event_record(instance.pk, action, "locked", message="locked at the backend")
        _close(action.pk, ok=True, status=Status(info.status), info=info)
        return None
    return float(conf("POLL_INTERVAL"))


def actions_expire(*, grace_seconds: float = 60.0) -> int:
    """End actions whose task was lost (for example its message) well past their deadline."""
    cutoff = timezone.now() - timedelta(seconds=grace_seconds)
    overdue = InstanceAction.objects.filter(
        status__in=[ActionStatus.PENDING, ActionStatus.RUNNING], deadline__lt=cutoff
    ).values_list("pk", "action")
    for action_id, name in overdue:
        action_fail(action_id=action_id, fault=f"{name} was abandoned: no worker finished it before its deadline.")
    return len(overdue)
