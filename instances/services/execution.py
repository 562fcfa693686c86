"""The worker side: running an action step by step against its backend.

The one Celery task calls ``action_step`` until it returns ``None``; every way
out ends the action (and its instance) in a terminal state, through ``_close``.
What an action calls and waits for comes from its row of the operation table.
"""

from __future__ import annotations

import logging
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from categories.choices import AntiAffinity, NetworkPlacement
from categories.models import Image

from .. import operations
from ..choices import ActionStatus, Health, Status, TaskState
from ..drivers.base import (
    LOCK_REASON,
    DriverError,
    FlavorSpec,
    ProbeTarget,
    ServerInfo,
    ServerNotFound,
    ServerSpec,
    ServerStatus,
)
from ..drivers.registry import get_driver
from ..models import Instance, InstanceAction
from .lifecycle import FROM_POOL
from .records import Result, actions_resend, actions_waiting_for_queue, conf, event_record, events_record

log = logging.getLogger(__name__)

OPEN = (ActionStatus.PENDING, ActionStatus.RUNNING)


def _different_host(instance: Instance) -> tuple[str, ...]:
    """For hard anti-affinity: the servers of the project's other instances of the category, which the
    new server must not share a host with (some came from the spare pool, outside the server group)."""
    if instance.is_spare or instance.category.anti_affinity != AntiAffinity.HARD:
        return ()
    others = (
        Instance.objects.live()
        .filter(project_id=instance.project_id, category_id=instance.category_id, is_spare=False)
        .exclude(pk=instance.pk)
        .exclude(backend_id="")
        .values_list("backend_id", flat=True)
    )
    return tuple(others)


def _spec(instance: Instance, *, generation: int | None = None, image=None) -> ServerSpec:
    """What the driver makes for ``instance``: its own server, or (with ``generation``) a replacement,
    with ``image`` when a rollout names a new one. A spare waits on the management network only, in
    the pool's soft-anti-affinity group."""
    category, flavor, image = instance.category, instance.flavor, image or instance.image
    placement, anti_affinity = category.network_placement, category.anti_affinity
    if instance.is_spare:
        placement = NetworkPlacement.MANAGEMENT
        anti_affinity = AntiAffinity.SOFT if anti_affinity else AntiAffinity.NONE
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
        network_placement=placement,
        availability_zone=instance.availability_zone,
        anti_affinity=anti_affinity,
        gui_port=category.gui_port,
        metadata={k: str(v) for k, v in instance.metadata.items()},
        generation=instance.generation if generation is None else generation,
        different_host=_different_host(instance),
    )


@dataclass
class _Writes:
    """What a step learnt from the backend (the server's id, that the call was made, events), written
    in the transaction that ends the step: one commit a step, not one a fact. Whatever way the step
    leaves (a poll, the end, an exception), ``flush`` or ``_close`` writes them."""

    instance: dict = field(default_factory=dict)
    action: dict = field(default_factory=dict)
    events: list[tuple[str, str, str]] = field(default_factory=list)

    def event(self, event: str, result: str = Result.INFO, message: str = "") -> None:
        self.events.append((event, result, message))

    def write(self, action_id, instance_id, *, action: bool = True) -> None:
        """Write them in the caller's transaction (``action``: the action's own changes too)."""
        if action and self.action:
            InstanceAction.objects.filter(pk=action_id).update(**self.action)
        if self.instance:
            Instance.objects.filter(pk=instance_id).update(**self.instance)
        events_record(instance_id, action_id, self.events)
        self.instance, self.action, self.events = {}, {}, []

    def flush(self, action_id, instance_id) -> None:
        if self.instance or self.action or self.events:
            with transaction.atomic():
                self.write(action_id, instance_id)


def _close(
    action_id,
    *,
    ok: bool,
    status: str | None,
    message: str = "",
    info: ServerInfo | None = None,
    action: InstanceAction | None = None,
    writes: _Writes | None = None,
) -> None:
    """Finish an action once, whatever number of deliveries race to do it: a conditional UPDATE of an
    open action, in one transaction with the step's ``writes``, the instance and the final event.

    ``status`` ``None`` keeps the instance's status and fault: a replacement that failed leaves the
    instance on the server it had."""
    if action is None:
        action = InstanceAction.objects.only("pk", "instance_id", "action").get(pk=action_id)
    writes = writes or _Writes()
    with transaction.atomic():
        now = timezone.now()
        closed = InstanceAction.objects.filter(pk=action_id, status__in=OPEN).update(
            **writes.action,
            status=ActionStatus.SUCCEEDED if ok else ActionStatus.FAILED,
            message=message,
            finished_at=now,
        )
        if not closed:
            writes.write(action_id, action.instance_id, action=False)  # the server it made, its events
            return
        changes: dict = {**writes.instance, "task_state": "", "updated_at": now}
        if status is not None:
            changes.update(status=status, fault="" if ok else message)
        if info is not None:
            changes.update(host=info.host, addresses=info.addresses, management_endpoint=info.management_endpoint)
        if ok and operations.get(action.action).creates:
            changes["launched_at"] = now
        if status == Status.DELETED:
            changes["deleted_at"] = now
        Instance.objects.filter(pk=action.instance_id).update(**changes)
        writes.event(
            "finished" if ok else "failed",
            Result.SUCCESS if ok else Result.ERROR,
            message or f"{action.action} finished: {status}",
        )
        writes.instance, writes.action = {}, {}
        writes.write(action_id, action.instance_id)


def action_fail(*, action_id, fault: str, writes: _Writes | None = None) -> None:
    """End an action in ERROR with a fault a human understands (never stuck).

    A replacement that fails is deleted (as far as the backend answers) and its instance keeps the
    server and status it had; the fault goes to the action and its events. ``writes``: what the step
    learnt before it failed (a launch's server id), written with the end."""
    log.warning("action %s failed: %s", action_id, fault)
    action = InstanceAction.objects.filter(pk=action_id).select_related("instance").first()
    if action is None:
        return
    if action.is_open and operations.get(action.action).replaces:
        new_id = action.params.get(NEW_SERVER, "")
        if new_id and action.instance.backend_id != new_id:
            try:
                get_driver(action.instance.backend).delete(new_id)
                event_record(action.instance_id, action, "replacement_deleted", message=f"server {new_id} deleted")
            except DriverError as exc:
                event_record(
                    action.instance_id, action, "replacement_left", Result.ERROR,
                    f"The failed replacement {new_id} could not be deleted: {exc}",
                )  # fmt: skip
        _close(action_id, ok=False, status=None, message=fault, action=action, writes=writes)
        return
    _close(action_id, ok=False, status=Status.ERROR, message=fault, action=action, writes=writes)


def _spawns(row: operations.Operation, action: InstanceAction, instance: Instance) -> bool:
    """Whether this step makes the launch's server (no server recorded yet, none taken from the pool)."""
    return row.creates and not action.params.get(FROM_POOL) and not instance.backend_id


def _create(action: InstanceAction, instance: Instance, driver, writes: _Writes) -> ServerInfo:
    """The launch's one create call; idempotent, so a redelivered task finds the server an earlier try made.
    The step's start wrote the ``spawning`` task state and event (``_begin``)."""
    info = driver.create(_spec(instance))
    if pause := conf("FAULT_PAUSE_AFTER_CREATE"):
        # Fault injection for tests: a worker may die here, after the server exists, before we know it.
        time.sleep(pause)
    writes.instance.update(
        backend_id=info.backend_id,
        host=info.host,
        addresses=info.addresses,
        management_endpoint=info.management_endpoint,
        updated_at=timezone.now(),
    )
    return info


def _call_backend(
    row: operations.Operation, action: InstanceAction, instance: Instance, driver, writes: _Writes
) -> ServerInfo | None:
    """Make the action's one backend call, once; then report the server's state.

    ``None`` means the server is gone. A redelivered task finds
    ``backend_called`` set (or, for a launch, the server by its stamp) and only
    polls. What the call changed goes to ``writes``; the caller writes it with the step's end.
    """
    backend_id = instance.backend_id
    if row.creates and action.params.get(FROM_POOL):
        if not action.backend_called:
            driver.assign(backend_id, _spec(instance))
            writes.action["backend_called"] = True
            writes.event("assigned", message="a ready spare taken from the pool")
        return driver.get(backend_id)
    if row.creates:
        return driver.get(backend_id) if backend_id else _create(action, instance, driver, writes)
    if not backend_id:
        # The launch may have made a server without living to record it.
        found = driver.find(str(instance.pk), instance.generation)
        if found is None:
            return None
        backend_id = found.backend_id
    if not action.backend_called:
        getattr(driver, row.driver_call)(backend_id, **row.clean_params(action.params))
        writes.action["backend_called"] = True
        writes.event("backend_called", message=f"{row.name} sent to '{instance.backend}'")
    return driver.get(backend_id)


def _begin(row: operations.Operation, action: InstanceAction, instance: Instance, now: datetime) -> None:
    """Count the delivery and mark the action running; a launch about to make its server shows
    ``spawning`` first (and says so in an event). One transaction, before any backend call."""
    counted = {"attempts": F("attempts") + 1}
    spawning = now <= action.deadline and not row.replaces and _spawns(row, action, instance)
    with transaction.atomic() if spawning else nullcontext():
        if not (
            action.status == ActionStatus.PENDING
            and InstanceAction.objects.filter(pk=action.pk, status=ActionStatus.PENDING).update(
                status=ActionStatus.RUNNING, started_at=now, **counted
            )
        ):
            InstanceAction.objects.filter(pk=action.pk).update(**counted)
        if spawning:
            Instance.objects.filter(pk=instance.pk).update(task_state=TaskState.SPAWNING)
            event_record(
                instance.pk, action, "spawning", message=f"creating the server on backend '{instance.backend}'"
            )


def action_step(*, action_id) -> float | None:
    """Advance an action by one step.

    Returns the number of seconds after which the task should poll again, or
    ``None`` when the action has ended. Transient backend errors
    (``BackendUnavailable``) propagate, so the task retries with backoff; every
    other failure ends the action in ERROR. A backend that answers the awaited
    state at once (the sim without delays) ends the action in this step: no poll.
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
    _begin(row, action, instance, now)
    if now > action.deadline:
        action_fail(
            action_id=action.pk,
            fault=f"{action.action} did not finish within {int(conf('ACTION_TIMEOUT'))} s; "
            f"the backend '{instance.backend}' did not reach the expected state.",
        )
        return None

    driver = get_driver(instance.backend)
    if row.replaces:
        return _replace_step(row, action, instance, driver)
    writes = _Writes()
    try:
        countdown = _advance(row, action, instance, driver, writes)
    except BaseException:
        # A transient error (retried) or a bug (failed by the task): what the backend did is kept,
        # so that the next delivery neither calls it again nor loses the server it made.
        try:
            writes.flush(action.pk, instance.pk)
        except Exception:
            log.exception("action %s: could not record what the backend did", action.pk)
        raise
    if countdown is not None:
        writes.flush(action.pk, instance.pk)
    return countdown


def _advance(
    row: operations.Operation, action: InstanceAction, instance: Instance, driver, writes: _Writes
) -> float | None:
    """The body of ``action_step`` for a row that does not replace the server; see there."""
    try:
        info = _call_backend(row, action, instance, driver, writes)
    except ServerNotFound:
        info = None
    except DriverError as exc:
        if exc.transient:
            raise
        action_fail(action_id=action.pk, fault=str(exc), writes=writes)
        return None

    if info is None:
        if row.deletes:
            try:
                driver.release(_spec(instance))
            except DriverError as exc:
                if exc.transient:
                    raise
                writes.event("release_failed", Result.ERROR, f"Left at the backend: {exc}")
            _close(action.pk, ok=True, status=Status.DELETED, message="server deleted", action=action, writes=writes)
        else:
            action_fail(
                action_id=action.pk, fault=f"The server vanished from backend '{instance.backend}'.", writes=writes
            )
        return None
    if info.status == ServerStatus.ERROR or (
        info.fault and info.status == ServerStatus.STOPPED and row.awaits == ServerStatus.ACTIVE
    ):
        # ERROR, or a container whose process exited as it started: no use waiting for ACTIVE.
        fault = info.fault or f"The backend '{instance.backend}' reported ERROR."
        action_fail(action_id=action.pk, fault=fault, writes=writes)
        return None
    if row.awaits is not None and info.status == row.awaits:
        if not _locked(row, action, instance, driver, info, writes):
            return None
        _close(action.pk, ok=True, status=Status(info.status), info=info, action=action, writes=writes)
        return None
    return float(conf("POLL_INTERVAL"))


def _locked(
    row: operations.Operation,
    action: InstanceAction,
    instance: Instance,
    driver,
    info: ServerInfo,
    writes: _Writes | None = None,
) -> bool:
    """Lock a managed instance's server once it runs (rule 3): nobody bypasses the dashboard.
    False when it could not be locked (the action has failed)."""
    if row.locks_managed and instance.category.is_managed and not info.locked:
        try:
            driver.lock(info.backend_id, reason=LOCK_REASON)
        except DriverError as exc:
            if exc.transient:
                raise
            action_fail(action_id=action.pk, fault=f"The server runs but could not be locked: {exc}", writes=writes)
            return False
        if writes is None:
            event_record(instance.pk, action, "locked", message="locked at the backend")
        else:
            writes.event("locked", message="locked at the backend")
    return True


# The action parameters of a replacement: the new server's backend id, the failed probes of it so far.
NEW_SERVER = "new_server"
PROBE_FAILURES = "probe_failures"
ACTIVE_AT = "active_at"


def probe_target(instance: Instance, addresses: dict, backend_id: str) -> ProbeTarget:
    category = instance.category
    return ProbeTarget(
        backend_id=backend_id,
        addresses=addresses,
        port=category.health_check_port,
        path=category.health_check_path or "/",
        timeout=float(conf("HEALTH_CHECK_TIMEOUT")),
    )


def _replace_step(row: operations.Operation, action: InstanceAction, instance: Instance, driver) -> float | None:
    """One step of a heal or a rollout's replacement.

    Make the replacement (the instance's next generation, with the rollout's image), wait until it
    runs, lock it, probe it with the category's health check until it answers (a replacement that
    fails the threshold fails), then move the instance to it and delete the old server. Any
    failure before the move deletes the replacement and leaves the instance as it was.
    """
    params, generation = dict(action.params), int(action.params.get("generation", instance.generation + 1))
    if instance.generation >= generation:
        return _old_server_deleted(action, instance, driver)  # moved by an earlier delivery
    image = Image.objects.filter(pk=params["image"]).first() if params.get("image") else instance.image
    if image is None:
        action_fail(action_id=action.pk, fault="The rollout's image no longer exists.")
        return None
    try:
        if not action.backend_called:
            info = _replacement_create(action, instance, driver, params, generation=generation, image=image)
        else:
            info = driver.get(params[NEW_SERVER])
    except ServerNotFound:
        action_fail(action_id=action.pk, fault=f"The replacement server vanished from backend '{instance.backend}'.")
        return None
    except DriverError as exc:
        if exc.transient:
            raise
        action_fail(action_id=action.pk, fault=f"The replacement could not be made: {exc}")
        return None
    if info.status == ServerStatus.ERROR or (info.fault and info.status == ServerStatus.STOPPED):
        action_fail(action_id=action.pk, fault=f"The replacement failed: {info.fault or 'the backend reported ERROR'}")
        return None
    if info.status != ServerStatus.ACTIVE:
        return float(conf("POLL_INTERVAL"))
    if not _locked(row, action, instance, driver, info):
        return None
    if instance.category.health_check_port:
        error = driver.probe_many([probe_target(instance, info.addresses, info.backend_id)], parallel=1).get(
            info.backend_id, "no answer"
        )
        if error and _in_grace(action, params):
            return float(conf("HEALTH_CHECK_RETRY"))  # the appliance may still be starting
        if error:
            failures = int(params.get(PROBE_FAILURES, 0)) + 1
            params[PROBE_FAILURES] = failures
            InstanceAction.objects.filter(pk=action.pk).update(params=params)
            if failures >= instance.category.health_check_threshold:
                action_fail(action_id=action.pk, fault=f"The replacement failed its health check: {error}")
                return None
            return float(conf("HEALTH_CHECK_RETRY"))
    _move(action, instance, info, image=image, generation=generation)
    instance.refresh_from_db()
    return _old_server_deleted(action, instance, driver)


def _replacement_create(action: InstanceAction, instance: Instance, driver, params: dict, *, generation, image):
    """Make the replacement once, whatever number of deliveries of this step run at once (the broker hands
    a message out again when its first delivery outlives the visibility timeout): the action's row is
    locked across the create, and a delivery that waited for it finds the server recorded. Looking the
    server up by its tags does not do: two creates at once both find none (seen on Nova: two servers of
    one generation)."""
    with transaction.atomic():
        locked = InstanceAction.objects.select_for_update().only("params", "backend_called").get(pk=action.pk)
        if locked.backend_called:  # a twin delivery made it while this one waited
            params.update(locked.params)
            return driver.get(params[NEW_SERVER])
        event_record(instance.pk, action, "spawning", message=f"creating a replacement server (image {image})")
        info = driver.create(_spec(instance, generation=generation, image=image))
        if pause := conf("FAULT_PAUSE_AFTER_CREATE"):
            time.sleep(pause)  # fault injection for tests: the server exists, nothing records it yet
        params[NEW_SERVER] = info.backend_id
        InstanceAction.objects.filter(pk=action.pk).update(params=params, backend_called=True)
        return info


def _in_grace(action: InstanceAction, params: dict) -> bool:
    """Whether the replacement booted less than the category's ``health_check_grace`` ago (counted from the
    step that first saw it ACTIVE, recorded in the action)."""
    now = timezone.now()
    if ACTIVE_AT not in params:
        params[ACTIVE_AT] = now.isoformat()
        InstanceAction.objects.filter(pk=action.pk).update(params=params)
    since = datetime.fromisoformat(params[ACTIVE_AT])
    return (now - since).total_seconds() < action.instance.category.health_check_grace


def _move(action: InstanceAction, instance: Instance, info: ServerInfo, *, image, generation: int) -> None:
    """Point the instance at its replacement: same id and name; the new server, addresses and endpoint."""
    now = timezone.now()
    checked = bool(instance.category.health_check_port)
    with transaction.atomic():
        moved = Instance.objects.filter(pk=instance.pk, generation__lt=generation).update(
            backend_id=info.backend_id,
            host=info.host,
            addresses=info.addresses,
            management_endpoint=info.management_endpoint,
            image=image,
            generation=generation,
            status=Status.ACTIVE,
            fault="",
            health=Health.HEALTHY if checked else "",
            health_failures=0,
            health_since=now,
            health_checked_at=now if checked else None,
            health_error="",
            updated_at=now,
        )
        if moved:
            params = {**action.params, "old_server": instance.backend_id}
            InstanceAction.objects.filter(pk=action.pk).update(params=params)
            event_record(
                instance.pk, action, "moved",
                message=f"now on server {info.backend_id} (was {instance.backend_id or 'none'}), image {image}",
            )  # fmt: skip


def _old_server_deleted(action: InstanceAction, instance: Instance, driver) -> float | None:
    """The last step: delete the server the instance left; then the action has succeeded."""
    action.refresh_from_db(fields=["params"])
    old = action.params.get("old_server", "")
    if old and old != instance.backend_id:
        try:
            driver.delete(old)
        except DriverError as exc:
            if exc.transient:
                raise
            event_record(instance.pk, action, "old_server_left", Result.ERROR, f"Server {old} was not deleted: {exc}")
        else:
            event_record(instance.pk, action, "old_server_deleted", message=f"server {old} deleted")
    _close(action.pk, ok=True, status=Status.ACTIVE, message=f"{action.action} finished: on a new server")
    return None


def actions_expire(*, grace_seconds: float = 60.0) -> int:
    """Send the actions that wait for the task queue (``actions_resend``), then end actions whose task
    was lost (for example its message) well past their deadline. An action still waiting for the
    queue is not lost: it is sent when the broker is back, never failed for the broker's outage."""
    actions_resend()
    cutoff = timezone.now() - timedelta(seconds=grace_seconds)
    overdue = (
        InstanceAction.objects.filter(status__in=[ActionStatus.PENDING, ActionStatus.RUNNING], deadline__lt=cutoff)
        .exclude(pk__in=actions_waiting_for_queue().values("pk"))
        .values_list("pk", "action")
    )
    for action_id, name in overdue:
        action_fail(action_id=action_id, fault=f"{name} was abandoned: no worker finished it before its deadline.")
    return len(overdue)
