"""Reconcile: compare our rows with what each backend reports, in bulk, and apply the drift.

``drift_compare`` is pure (rows and servers in, a ``Drift`` out); ``drift_apply``
writes it; ``instances_reconcile`` runs both for every backend, a page of servers
at a time: queries and backend calls grow with pages, not instances, and a worker
holds one page of rows and servers (and the backend ids of the idle rows).
"""

from __future__ import annotations

import uuid
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
# Servers listed, and rows read, at a time.
PAGE_SIZE = 1000
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


def drift_compare(
    *, backend: str, rows: Iterable[Instance], servers: list[ServerInfo], owners: dict[str, str | None] | None = None
) -> Drift:
    """Compare live rows of ``backend`` with its servers. Pure: changes the given row objects, writes nothing.

    A row an action owns (``task_state`` set) is left to that action. A row is matched
    with its server by the backend id it recorded, never by the instance stamp a server
    carries (a tenant may stamp a server of her own); a row that recorded none has no
    server to compare. A row whose server is missing turns ERROR; a server stamped with
    no live row, or with one that runs on another server (one a heal or rollout replaced
    but could not delete), is an orphan.

    When ``servers`` are one page of a longer listing, ``owners`` tells of the rows not among
    ``rows`` that servers of the page are stamped with: instance id → the backend id its row
    runs on (None while an action owns it).
    """
    by_backend_id = {s.backend_id: s for s in servers}
    drift, known = Drift(), dict(owners or {})
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


def _drift_write(changes: list[tuple[Instance, InstanceEvent]]) -> list[InstanceEvent]:
    """One conditional UPDATE per drifted row (not per instance): a row that changed since it was
    read (an action claimed it, or one finished while the backend was listed) keeps what it has.
    The events of the rows written."""
    applied = []
    for inst, event in changes:
        values = {name: getattr(inst, name) for name in _WRITTEN}
        unchanged = Instance.objects.filter(pk=inst.pk, task_state="", updated_at=inst.updated_at)
        if unchanged.update(**values, updated_at=timezone.now()):
            applied.append(event)
    InstanceEvent.objects.bulk_create(applied)
    return applied


def _run_finish(run: ReconcileRun, *, checked: int, applied: list[InstanceEvent], orphans: list[dict]) -> ReconcileRun:
    run.checked = checked
    run.updated = len(applied)
    run.vanished = [str(e.instance_id) for e in applied if e.event == "vanished"]
    run.orphans = orphans
    run.finished_at = timezone.now()
    run.save()
    return run


@transaction.atomic
def drift_apply(*, run: ReconcileRun, drift: Drift) -> ReconcileRun:
    """Write the drift and finish ``run``."""
    return _run_finish(run, checked=drift.checked, applied=_drift_write(drift.changes), orphans=drift.orphans)


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _page_drift(backend: str, live, servers: list[ServerInfo]) -> Drift:
    """The drift of one page of servers: the rows that recorded them, read after the page was listed,
    and the owners of the other instances the page's servers are stamped with (few: orphans, and rows
    that run on another server)."""
    rows = list(live.filter(backend_id__in=[s.backend_id for s in servers]).only(*RECONCILE_FIELDS))
    read = {str(inst.pk) for inst in rows}
    stamps = {s.instance_id for s in servers if s.instance_id not in read and _is_uuid(s.instance_id)}
    owners: dict[str, str | None] = {}
    if stamps:
        for pk, backend_id, task_state in live.filter(pk__in=stamps).values_list("pk", "backend_id", "task_state"):
            owners[str(pk)] = None if task_state else backend_id
    return drift_compare(backend=backend, rows=rows, servers=servers, owners=owners)


def _backend_reconcile(run: ReconcileRun, backend: str, page_size: int) -> ReconcileRun:
    """Reconcile one backend a page at a time, each page's drift written before the next is listed.

    The idle rows' backend ids are read before the listing: a row whose server no page lists
    vanished, unless an action moved it to another server meanwhile (then it is not read again).
    A listing that fails halfway keeps the pages written and marks nothing vanished."""
    live = Instance.objects.filter(backend=backend).live()
    expected, checked = set(), 0
    for backend_id, task_state in live.values_list("backend_id", "task_state").iterator(chunk_size=10 * page_size):
        checked += 1
        if backend_id and not task_state:
            expected.add(backend_id)
    applied, orphans = [], []
    try:
        for servers in get_driver(backend).list_servers_pages(page_size):
            expected.difference_update(s.backend_id for s in servers)
            drift = _page_drift(backend, live, servers)
            if drift.changes:
                with transaction.atomic():
                    applied += _drift_write(drift.changes)
            orphans += drift.orphans
    except DriverError as exc:
        run.error = str(exc)
        return _run_finish(run, checked=0, applied=applied, orphans=orphans)
    missing = sorted(expected)
    for start in range(0, len(missing), page_size):
        rows = live.filter(backend_id__in=missing[start : start + page_size]).only(*RECONCILE_FIELDS)
        drift = drift_compare(backend=backend, rows=rows, servers=[])
        with transaction.atomic():
            applied += _drift_write(drift.changes)
    return _run_finish(run, checked=checked, applied=applied, orphans=orphans)


def instances_reconcile(*, backends: list[str] | None = None, page_size: int = PAGE_SIZE) -> list[ReconcileRun]:
    """Compare the database with each backend, ``page_size`` servers at a time, and apply what drifted.

    Updates statuses that drifted, marks instances whose server vanished ERROR,
    reports orphans (servers stamped by us with no live row) and first ends
    abandoned actions.
    """
    expired = actions_expire()
    runs = []
    for backend in backends or enabled_backends():
        run = ReconcileRun.objects.create(backend=backend, expired_actions=expired)
        expired = 0
        runs.append(_backend_reconcile(run, backend, page_size))
    return runs
