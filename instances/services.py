"""Every rule about instances: launch, lifecycle actions, their execution, reconcile.

Request-side functions (``instance_launch``, ``instance_reboot``…) validate,
write the instance and its action in one transaction, and enqueue the task on
commit; they return at once. Worker-side functions (``action_step``,
``action_fail``, ``instances_reconcile``) are what the Celery tasks call. Every
caller (REST API, web UI, EC2 API, management commands, tasks) goes through
here; none repeats a rule.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta

from celery import current_app
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from categories.choices import Kind
from categories.models import Flavor, Image, InstanceCategory
from categories.selectors import category_default_image, image_refusal
from categories.services import catalog_mirror, category_standard
from tenancy import policy
from tenancy.errors import Conflict, InvalidInput, NotFound, QuotaExceeded, require
from tenancy.models import Project

from .choices import ActionStatus, ActionType, Status, TaskState
from .drivers.base import LOCK_REASON, DriverError, FlavorSpec, ServerInfo, ServerNotFound, ServerSpec, ServerStatus
from .drivers.registry import backend_refusal, default_backend, get_driver
from .models import LIFECYCLE, Instance, InstanceAction, InstanceEvent, ReconcileRun

log = logging.getLogger(__name__)

TASK_NAMES = {
    ActionType.LAUNCH: "instances.tasks.launch",
    ActionType.REBOOT: "instances.tasks.reboot",
    ActionType.STOP: "instances.tasks.stop",
    ActionType.START: "instances.tasks.start",
    ActionType.TERMINATE: "instances.tasks.terminate",
}
Result = InstanceEvent.Result


def _conf(key: str):
    return settings.ADMINVMS[key]


def _enqueue(action: InstanceAction) -> None:
    """Send the action's task once the transaction that wrote it commits.

    The task is looked up by name so that this layer does not import the tasks
    module (which calls us); the action's id is the task id.
    """
    task_name = TASK_NAMES[action.action]
    action_id = str(action.pk)

    def send() -> None:
        current_app.tasks[task_name].apply_async(args=[action_id], task_id=action_id)

    transaction.on_commit(send)


def _event(instance_id, action: InstanceAction | None, event: str, result: str = Result.INFO, message: str = ""):
    return InstanceEvent.objects.create(
        instance_id=instance_id, action=action, event=event, result=result, message=message
    )


def _new_action(*, instance: Instance, user, action: str, params: dict | None = None) -> InstanceAction:
    record = InstanceAction.objects.create(
        instance=instance,
        action=action,
        requested_by=user if getattr(user, "is_authenticated", False) else None,
        params=params or {},
        deadline=timezone.now() + timedelta(seconds=_conf("ACTION_TIMEOUT")),
    )
    _event(instance.pk, record, "requested", message=f"{action} requested by {user or 'system'}")
    _enqueue(record)
    return record


# --- reads ---------------------------------------------------------------------


def instance_get_visible(*, user, instance_id) -> Instance:
    """The instance if ``user`` may see it; NotFound otherwise (404, never 403: nothing leaks)."""
    try:
        return Instance.objects.with_related().visible_to(user).get(pk=instance_id)
    except (Instance.DoesNotExist, ValidationError, ValueError, TypeError) as exc:  # a malformed id is unknown too
        raise NotFound("No such instance.") from exc


# --- launch --------------------------------------------------------------------


def _resolve_project(user, project: Project | None) -> Project:
    if project is not None:
        return project
    if policy.is_provider_admin(user):
        raise InvalidInput("A provider admin must name the project to launch into.", field="project")
    member_of = policy.member_project_ids(user)
    if len(member_of) == 1:
        return Project.objects.get(pk=member_of[0])
    if not member_of:
        raise InvalidInput("You are not a member of any project that may launch.", field="project")
    raise InvalidInput("You are a member of several projects; name one.", field="project")


def _resolve_category(user, category: InstanceCategory | None) -> InstanceCategory:
    if category is None:
        category = category_standard()
    if not category.is_active:
        raise InvalidInput(f"Category '{category.slug}' is inactive and launches nothing.", field="category")
    return category


def _resolve_flavor(category: InstanceCategory, flavor: Flavor | None) -> Flavor | None:
    if flavor is None:
        flavor = category.default_flavor
        if flavor is None:
            if category.kind == Kind.CONTAINER:
                return None
            raise InvalidInput(f"Category '{category.slug}' has no default flavor; name one.", field="flavor")
    if not flavor.is_active:
        raise InvalidInput(f"Flavor '{flavor.name}' is not active.", field="flavor")
    allowed = {f.pk for f in category.allowed_flavors.all()}
    if allowed and flavor.pk not in allowed:
        raise InvalidInput(f"Flavor '{flavor.name}' is not allowed for category '{category.slug}'.", field="flavor")
    if problem := category.flavor_shortfall(flavor):
        raise InvalidInput(problem, field="flavor")
    return flavor


def _resolve_image(category: InstanceCategory, image: Image | None, flavor: Flavor | None) -> Image:
    if image is None:
        image = category_default_image(category)
        if image is None:
            raise InvalidInput(f"Category '{category.slug}' has no default image; name one.", field="image")
    if problem := image_refusal(category, image):
        raise InvalidInput(problem, field="image")
    if flavor is not None and (flavor.ram_mb < image.min_ram_mb or flavor.disk_gb < image.min_disk_gb):
        raise InvalidInput(f"Flavor '{flavor.name}' is too small for image '{image.name}'.", field="flavor")
    return image


def _check_quota(*, project: Project, category: InstanceCategory, count: int) -> None:
    """Holds under parallel launches: the project row is locked until commit (on
    SQLite the IMMEDIATE transaction holds the database's write lock)."""
    Project.objects.select_for_update().filter(pk=project.pk).first()
    if category.max_instances is None:
        return
    used = Instance.objects.live().filter(project=project, category=category).count()
    if used + count > category.max_instances:
        raise QuotaExceeded(
            f"Quota exceeded: project '{project.slug}' may hold {category.max_instances} instance(s) "
            f"of category '{category.slug}'; {used} in use, {count} requested.",
            field="count",
        )


@transaction.atomic
def instance_launch(
    *,
    user,
    name: str,
    project: Project | None = None,
    category: InstanceCategory | None = None,
    flavor: Flavor | None = None,
    image: Image | None = None,
    count: int = 1,
) -> list[Instance]:
    """Launch ``count`` instances of ``category`` (``standard`` when omitted).

    Fills in the category's default flavor and image, checks the allowed
    flavors, minimums, quota and policy, writes BUILDING instances with their
    launch actions, and enqueues the work on commit.
    """
    name = (name or "").strip()
    if not name:
        raise InvalidInput("A name is required.", field="name")
    if len(name) > 240:
        raise InvalidInput("The name is longer than 240 characters.", field="name")
    max_count = _conf("MAX_LAUNCH_COUNT")
    if not isinstance(count, int) or not 1 <= count <= max_count:
        raise InvalidInput(f"Count must be between 1 and {max_count}.", field="count")
    category = _resolve_category(user, category)
    project = _resolve_project(user, project)
    verdict = policy.can_launch(user, category=category, project=project)
    if verdict.denial == policy.Denial.NOT_FOUND:
        field = "project" if "project" in verdict.reason else "category"
        raise InvalidInput(f"Unknown {field}.", field=field)
    require(verdict)
    backend = category.backend or default_backend()
    if problem := backend_refusal(backend) or get_driver(backend).supports(category.kind):
        raise InvalidInput(problem, field="category")
    flavor = _resolve_flavor(category, flavor)
    image = _resolve_image(category, image, flavor)
    _check_quota(project=project, category=category, count=count)

    created = []
    for n in range(1, count + 1):
        instance = Instance(
            name=name if count == 1 else f"{name}-{n}",
            category=category,
            project=project,
            flavor=flavor,
            image=image,
            status=Status.BUILDING,
            task_state=TaskState.SCHEDULING,
            backend=backend,
            availability_zone=category.availability_zone,
            created_by=user if getattr(user, "is_authenticated", False) else None,
        )
        instance.metadata = {
            **category.extra_metadata,
            "adminvms_instance": str(instance.pk),
            "adminvms_category": category.slug,
            "adminvms_project": project.slug,
        }
        instance.save()
        _new_action(instance=instance, user=user, action=ActionType.LAUNCH)
        created.append(instance)
    return created


# --- lifecycle actions -------------------------------------------------------------


def _begin(
    *, user, instance: Instance, operation: str, task_state: str, status: str | None = None, params=None
) -> InstanceAction:
    """Check policy and state, then claim the instance atomically: of two
    concurrent requests exactly one wins, the other gets 409."""
    require(policy.can(user, operation, instance))
    changes = {"task_state": task_state, "updated_at": timezone.now()}
    if status:
        changes["status"] = status
    claimed = Instance.objects.filter(pk=instance.pk, task_state="", status__in=LIFECYCLE[operation]).update(**changes)
    if not claimed:
        instance.refresh_from_db()
        raise Conflict(instance.lifecycle_refusal(operation))
    for key, value in changes.items():
        setattr(instance, key, value)
    return _new_action(instance=instance, user=user, action=operation, params=params)


@transaction.atomic
def instance_reboot(*, user, instance: Instance, hard: bool = False) -> InstanceAction:
    """Reboot (soft, or hard when ``hard``); the instance is REBOOTING until the backend says ACTIVE."""
    return _begin(
        user=user,
        instance=instance,
        operation=ActionType.REBOOT,
        task_state=TaskState.REBOOTING,
        status=Status.REBOOTING,
        params={"hard": bool(hard)},
    )


@transaction.atomic
def instance_stop(*, user, instance: Instance) -> InstanceAction:
    """Power off; the instance stays ACTIVE (task ``stopping``) until the backend says STOPPED."""
    return _begin(user=user, instance=instance, operation=ActionType.STOP, task_state=TaskState.STOPPING)


@transaction.atomic
def instance_start(*, user, instance: Instance) -> InstanceAction:
    """Power on a STOPPED instance."""
    return _begin(user=user, instance=instance, operation=ActionType.START, task_state=TaskState.STARTING)


@transaction.atomic
def instance_terminate(*, user, instance: Instance) -> InstanceAction:
    """Delete the backend server; the row stays as DELETED history (soft delete)."""
    return _begin(
        user=user,
        instance=instance,
        operation=ActionType.TERMINATE,
        task_state=TaskState.DELETING,
        status=Status.DELETING,
    )


ACTIONS: dict[str, Callable[..., InstanceAction]] = {
    ActionType.REBOOT: instance_reboot,
    ActionType.STOP: instance_stop,
    ActionType.START: instance_start,
    ActionType.TERMINATE: instance_terminate,
}


# --- execution (called by the Celery tasks) -----------------------------------------


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
        image=(image.backend_id or image.name) if image else "",
        image_name=image.name if image else "",
        network_placement=category.network_placement,
        availability_zone=instance.availability_zone,
        anti_affinity=category.anti_affinity,
        gui_port=category.gui_port,
        metadata={k: str(v) for k, v in instance.metadata.items()},
    )


def _record_server(instance: Instance, info: ServerInfo) -> None:
    Instance.objects.filter(pk=instance.pk).update(
        backend_id=info.backend_id,
        host=info.host,
        addresses=info.addresses,
        management_endpoint=info.management_endpoint,
        updated_at=timezone.now(),
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
        changes: dict = {"status": status, "task_state": "", "updated_at": now}
        changes["fault"] = "" if ok else message
        if info is not None:
            changes.update(host=info.host, addresses=info.addresses, management_endpoint=info.management_endpoint)
        if ok and action.action == ActionType.LAUNCH:
            changes["launched_at"] = now
        if status == Status.DELETED:
            changes["deleted_at"] = now
        Instance.objects.filter(pk=action.instance_id).update(**changes)
        _event(
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


# What each action waits for, and the backend call that starts it.
_TARGETS = {
    ActionType.LAUNCH: ServerStatus.ACTIVE,
    ActionType.REBOOT: ServerStatus.ACTIVE,
    ActionType.STOP: ServerStatus.STOPPED,
    ActionType.START: ServerStatus.ACTIVE,
}


def _call_backend(action: InstanceAction, instance: Instance, driver) -> ServerInfo | None:
    """Make the action's one backend call, once; then report the server's state.

    ``None`` means the server is gone. A redelivered task finds
    ``backend_called`` set (or, for a launch, the server by its stamp) and only
    polls.
    """
    backend_id = instance.backend_id
    if action.action == ActionType.LAUNCH:
        if not backend_id:
            Instance.objects.filter(pk=instance.pk).update(task_state=TaskState.SPAWNING)
            _event(
                instance.pk,
                action,
                "spawning",
                message=f"creating the server on backend '{instance.backend}'",
            )
            info = driver.create(_spec(instance))  # idempotent: finds the server made by an earlier try
            if pause := _conf("FAULT_PAUSE_AFTER_CREATE"):
                # Fault injection for tests: a worker may die here, after the server exists, before we know it.
                time.sleep(pause)
            _record_server(instance, info)
            return info
        return driver.get(backend_id)
    if action.action == ActionType.TERMINATE and not backend_id:
        # The launch may have made a server without living to record it.
        found = driver.find(str(instance.pk))
        if found is None:
            return None
        backend_id = found.backend_id
    if not action.backend_called:
        if action.action == ActionType.REBOOT:
            driver.reboot(backend_id, hard=bool(action.params.get("hard")))
        elif action.action == ActionType.STOP:
            driver.stop(backend_id)
        elif action.action == ActionType.START:
            driver.start(backend_id)
        elif action.action == ActionType.TERMINATE:
            driver.delete(backend_id)
        InstanceAction.objects.filter(pk=action.pk).update(backend_called=True)
        _event(instance.pk, action, "backend_called", message=f"{action.action} sent to '{instance.backend}'")
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
    instance = action.instance
    now = timezone.now()
    if action.status == ActionStatus.PENDING:
        InstanceAction.objects.filter(pk=action.pk, status=ActionStatus.PENDING).update(
            status=ActionStatus.RUNNING, started_at=now
        )
    InstanceAction.objects.filter(pk=action.pk).update(attempts=action.attempts + 1)
    if now > action.deadline:
        action_fail(
            action_id=action.pk,
            fault=f"{action.action} did not finish within {int(_conf('ACTION_TIMEOUT'))} s; "
            f"the backend '{instance.backend}' did not reach the expected state.",
        )
        return None

    driver = get_driver(instance.backend)
    try:
        info = _call_backend(action, instance, driver)
    except ServerNotFound:
        info = None
    except DriverError as exc:
        if exc.transient:
            raise
        action_fail(action_id=action.pk, fault=str(exc))
        return None

    if action.action == ActionType.TERMINATE:
        if info is None:
            _close(action.pk, ok=True, status=Status.DELETED, message="server deleted")
            return None
    elif info is None:
        action_fail(action_id=action.pk, fault=f"The server vanished from backend '{instance.backend}'.")
        return None
    elif info.status == ServerStatus.ERROR or (
        info.fault and info.status == ServerStatus.STOPPED and _TARGETS[action.action] == ServerStatus.ACTIVE
    ):
        # ERROR, or a container whose process exited as it started: no use waiting for ACTIVE.
        action_fail(action_id=action.pk, fault=info.fault or f"The backend '{instance.backend}' reported ERROR.")
        return None
    elif info.status == _TARGETS[action.action]:
        if action.action == ActionType.LAUNCH and instance.category.is_managed and not info.locked:
            # Provider-managed and appliance servers are locked, so nobody bypasses the dashboard (rule 3).
            driver.lock(info.backend_id, reason=LOCK_REASON)
            _event(instance.pk, action, "locked", message="locked at the backend")
        status = Status.STOPPED if info.status == ServerStatus.STOPPED else Status.ACTIVE
        _close(action.pk, ok=True, status=status, info=info)
        return None
    return float(_conf("POLL_INTERVAL"))


# --- reconcile ------------------------------------------------------------------------

RECONCILE_FIELDS = (
    "id", "name", "status", "task_state", "backend_id", "fault", "host", "addresses", "management_endpoint",
)  # fmt: skip
_RECONCILED = {
    ServerStatus.ACTIVE: Status.ACTIVE,
    ServerStatus.STOPPED: Status.STOPPED,
    ServerStatus.ERROR: Status.ERROR,
}


def actions_expire(*, grace_seconds: float = 60.0) -> int:
    """End actions whose task was lost (for example its message) well past their deadline."""
    cutoff = timezone.now() - timedelta(seconds=grace_seconds)
    overdue = InstanceAction.objects.filter(
        status__in=[ActionStatus.PENDING, ActionStatus.RUNNING], deadline__lt=cutoff
    ).values_list("pk", "action")
    for action_id, name in overdue:
        action_fail(action_id=action_id, fault=f"{name} was abandoned: no worker finished it before its deadline.")
    return len(overdue)


def instances_reconcile(*, backends: list[str] | None = None) -> list[ReconcileRun]:
    """Compare the database with each backend in bulk.

    Updates statuses that drifted, marks instances whose server vanished
    ERROR, reports orphans (servers stamped by us with no live row) and ends
    abandoned actions. Queries and backend calls do not grow with instances.
    """
    from .drivers.registry import enabled_backends

    expired = actions_expire()
    runs = []
    for backend in backends or enabled_backends():
        run = ReconcileRun.objects.create(backend=backend, expired_actions=expired)
        expired = 0
        try:
            servers = get_driver(backend).list_servers()
        except DriverError as exc:
            run.error = str(exc)
            run.finished_at = timezone.now()
            run.save()
            runs.append(run)
            continue
        by_backend_id = {s.backend_id: s for s in servers}
        by_instance = {s.instance_id: s for s in servers if s.instance_id}
        rows = list(Instance.objects.filter(backend=backend).live().only(*RECONCILE_FIELDS))
        changed, events = [], []
        for inst in rows:
            if inst.task_state:
                continue  # an action owns it now
            info = by_backend_id.get(inst.backend_id) or by_instance.get(str(inst.pk))
            if info is None:
                if inst.backend_id and inst.status != Status.ERROR:
                    inst.status = Status.ERROR
                    inst.fault = f"The server vanished from backend '{backend}' (deleted behind our back)."
                    run.vanished.append(str(inst.pk))
                    changed.append(inst)
                    events.append(
                        InstanceEvent(instance=inst, event="vanished", result=Result.ERROR, message=inst.fault)
                    )
                continue
            new_status = _RECONCILED.get(info.status)
            moved = new_status == Status.ACTIVE == inst.status and (
                info.addresses != inst.addresses or info.management_endpoint != inst.management_endpoint
            )
            if moved:
                # Restarted behind our back (a Docker engine restart gives a new GUI port): the proxy must
                # never forward to an endpoint that may belong to someone else by now.
                events.append(InstanceEvent(instance=inst, event="endpoint_synced", message="addresses updated"))
                inst.addresses, inst.management_endpoint = info.addresses, info.management_endpoint
                changed.append(inst)
            elif new_status and new_status != inst.status:
                events.append(
                    InstanceEvent(
                        instance=inst,
                        event="status_synced",
                        result=Result.ERROR if new_status == Status.ERROR else Result.INFO,
                        message=f"{inst.status} → {new_status} as reported by '{backend}'",
                    )
                )
                inst.status = new_status
                inst.fault = info.fault if new_status == Status.ERROR else ""
                inst.backend_id, inst.host, inst.addresses = info.backend_id, info.host, info.addresses
                inst.management_endpoint = info.management_endpoint
                changed.append(inst)
        known = {str(inst.pk) for inst in rows}
        run.orphans = [
            {"backend_id": s.backend_id, "instance_id": s.instance_id, "status": s.status}
            for s in servers
            if s.instance_id not in known
        ]
        updated = []
        with transaction.atomic():
            # One conditional UPDATE per drifted row (not per instance): an action
            # that claimed the row since we read it wins.
            for inst, event in zip(changed, events, strict=True):
                if Instance.objects.filter(pk=inst.pk, task_state="").update(
                    status=inst.status, fault=inst.fault, backend_id=inst.backend_id, host=inst.host,
                    addresses=inst.addresses, management_endpoint=inst.management_endpoint,
                    updated_at=timezone.now(),
                ):  # fmt: skip
                    updated.append(event)
            InstanceEvent.objects.bulk_create(updated)
            run.checked = len(rows)
            run.updated = len(updated)
            run.vanished = [v for v in run.vanished if v in {str(e.instance_id) for e in updated}]
            run.finished_at = timezone.now()
            run.save()
        runs.append(run)
    return runs


# --- the catalog ---------------------------------------------------------------------


def catalog_sync(*, backend: str) -> dict[str, int]:
    """Mirror a backend's flavors and images into the catalog, and map projects to it by name."""
    driver = get_driver(backend)
    return catalog_mirror(
        flavors=[vars(f) for f in driver.list_flavors()],
        images=[vars(i) for i in driver.list_images()],
        projects=driver.list_projects(),
    )
