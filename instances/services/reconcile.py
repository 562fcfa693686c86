"""Reconcile: compare our rows with what each backend reports, in bulk, and apply the drift.

``drift_compare`` is pure (rows and servers in, a ``Drift`` out); ``drift_apply``
writes it; ``instances_reconcile`` runs both for every backend. Queries and
backend calls do not grow with the number of instances.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from ..choices import Health, Status
from ..drivers.base import DriverError, ServerInfo, ServerStatus
from ..drivers.registry import enabled_backends, get_driver
from ..models import Instance, InstanceEvent, ReconcileRun
from .execution import actions_expire
from .records import Result

# The columns reconcile reads and may write.
RECONCILE_FIELDS = (
    "id", "name", "status", "task_state", "backend_id", "fault", "host", "addresses", "management_endpoint",
    "updated_at", "health", "health_since", "health_error",
)  # fmt: skip
_WRITTEN = (
    "status", "fault", "backend_id", "host", "addresses", "management_endpoint", "health", "health_since",
    "health_error",
)  # fmt: skip
_RECONCILED = {
    ServerStatus.ACTIVE: Status.ACTIVE,
    ServerStatus.STOPPED: Status.STOPPED,
    ServerStatus.ERROR: Status.ERROR,
}


@dataclass
class Drift:
    """What one backend's listing says about our rows: the changed rows with their events, and orphans."""

    changes: list[tuple[Instance, InstanceEvent]] = field(default_factory=list)
    orphans: list[dict] = field(default_factory=list)
    checked: int = 0


def _unhealthy(inst: Instance) -> None:
    """A server that vanished or broke is unhealthy, whatever its health check said (auto-heal reads it)."""
    inst.health, inst.health_since, inst.health_error = Health.UNHEALTHY, timezone.now(), inst.fault


def _vanished(inst: Instance, backend: str) -> InstanceEvent | None:
    if not inst.backend_id or inst.status == Status.ERROR:
        return None  # never made a server (its launch owns that), or already known
    inst.status = Status.ERROR
    inst.fault = f"The server vanished from backend '{backend}' (deleted behind our back)."
    _unhealthy(inst)
    return InstanceEvent(instance=inst, event="vanished", result=Result.ERROR, message=inst.fault)


def _drifted(inst: Instance, info: ServerInfo, backend: str) -> InstanceEvent | None:
    new_status = _RECONCILED.get(info.status)
    if new_status == Status.ACTIVE == inst.status and (
        info.addresses != inst.addresses or info.management_endpoint != inst.management_endpoint
    ):
        # Restarted behind our back (a Docker engine restart gives a new GUI port): the proxy must
        # never forward to an endpoint that may belong to someone else by now.
        inst.addresses, inst.management_endpoint = info.addresses, info.management_endpoint
        return InstanceEvent(instance=inst, event="endpoint_synced", message="addresses updated")
    if not new_status or new_status == inst.status:
        return None
    event = InstanceEvent(
        instance=inst,
        event="status_synced",
        result=Result.ERROR if new_status == Status.ERROR else Result.INFO,
        message=f"{inst.status} → {new_status} as reported by '{backend}'",
    )
    inst.status = new_status
    inst.fault = info.fault if new_status == Status.ERROR else ""
    if new_status == Status.ERROR:
        _unhealthy(inst)
    inst.backend_id, inst.host, inst.addresses = info.backend_id, info.host, info.addresses
    inst.management_endpoint = info.management_endpoint
    return event


def drift_compare(*, backend: str, rows: Iterable[Instance], servers: list[ServerInfo]) -> Drift:
    """Compare live rows of ``backend`` with its servers. Pure: changes the given row objects, writes nothing.

    A row an action owns (``task_state`` set) is left to that action. A row is matched
    with its server by the backend id it recorded, never by the instance stamp a server
    carries (a tenant may stamp a server of her own); a row that recorded none has no
    server to compare. A row whose server is missing turns ERROR; a server stamped with
    no live row, or with one that runs on another server (one a heal or rollout replaced
    but could not delete), is an orphan.
    """
    by_backend_id = {s.backend_id: s for s in servers}
    drift, known = Drift(), {}
    for inst in rows:
        drift.checked += 1
        # The server the row runs on; None while an action owns the row (a launch or a replacement
        # may have made a server it has not recorded yet).
        known[str(inst.pk)] = None if inst.task_state else inst.backend_id
        if inst.task_state or not inst.backend_id:
            continue
        info = by_backend_id.get(inst.backend_id)
        event = _vanished(inst, backend) if info is None else _drifted(inst, info, backend)
        if event is not None:
            drift.changes.append((inst, event))
    drift.orphans = [
        {"backend_id": s.backend_id, "instance_id": s.instance_id, "status": s.status}
        for s in servers
        if s.instance_id not in known or known[s.instance_id] not in (None, s.backend_id)
    ]
    return drift


@transaction.atomic
def drift_apply(*, run: ReconcileRun, drift: Drift) -> ReconcileRun:
    """Write the drift and finish ``run``. One conditional UPDATE per drifted row (not
    per instance): a row that changed since it was read (an action claimed it, or one
    finished while the backend was listed) keeps what it has."""
    applied = []
    for inst, event in drift.changes:
        values = {name: getattr(inst, name) for name in _WRITTEN}
        unchanged = Instance.objects.filter(pk=inst.pk, task_state="", updated_at=inst.updated_at)
        if unchanged.update(**values, updated_at=timezone.now()):
            applied.append(event)
    InstanceEvent.objects.bulk_create(applied)
    run.checked = drift.checked
    run.updated = len(applied)
    run.vanished = [str(e.instance_id) for e in applied if e.event == "vanished"]
    run.orphans = drift.orphans
    run.finished_at = timezone.now()
    run.save()
    return run


def instances_reconcile(*, backends: list[str] | None = None) -> list[ReconcileRun]:
    """Compare the database with each backend in bulk and apply what drifted.

    Updates statuses that drifted, marks instances whose server vanished ERROR,
    reports orphans (servers stamped by us with no live row) and first ends
    abandoned actions.
    """
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
        rows = Instance.objects.filter(backend=backend).live().only(*RECONCILE_FIELDS)
        runs.append(drift_apply(run=run, drift=drift_compare(backend=backend, rows=rows, servers=servers)))
    return runs
