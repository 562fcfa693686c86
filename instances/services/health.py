"""Health checks: probe the appliances of categories with a health check, and keep the verdicts.

``health_check`` runs in the worker (Celery beat), never in a web request: it probes every
ACTIVE instance (spares too) of a category with ``health_check_port``, each backend's in bounded
parallel batches through its driver, and records per instance the verdict, the consecutive
failures, since when the verdict holds and the last error. An instance turns ``failing`` at its
first failed probe, ``unhealthy`` after the category's ``health_check_threshold`` in a row, and
``healthy`` again at its first good probe. Every change of verdict is an event: the history.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils import timezone

from ..choices import Health, Status
from ..drivers.base import DriverError
from ..drivers.registry import enabled_backends, get_driver
from ..models import Instance, InstanceEvent
from .execution import probe_target
from .records import Result, conf

# The events that say an instance turned unhealthy (the circuit breaker counts them).
UNHEALTHY_EVENTS = ("health_unhealthy", "vanished")
_BATCH = 500
_FIELDS = (
    "id", "category", "backend", "backend_id", "addresses", "generation", "health", "health_failures",
    "health_since", "health_error",
)  # fmt: skip


@dataclass
class HealthReport:
    probed: int = 0
    healthy: int = 0
    failing: int = 0
    unhealthy: int = 0
    errors: int = 0  # backends that could not be probed


def _verdict(inst: Instance, error: str, now) -> tuple[dict, InstanceEvent | None]:
    """The columns to write after one probe of ``inst``, and the event when the verdict changed."""
    threshold = inst.category.health_check_threshold
    if not error:
        changes = {"health": Health.HEALTHY, "health_failures": 0, "health_error": "", "health_checked_at": now}
        if inst.health == Health.HEALTHY:
            return changes, None
        changes["health_since"] = now
        event = None
        if inst.health in (Health.FAILING, Health.UNHEALTHY):
            event = InstanceEvent(
                instance_id=inst.pk, event="health_recovered", result=Result.SUCCESS,
                message=f"healthy again after {inst.health_failures} failed probe(s)",
            )  # fmt: skip
        return changes, event
    failures = inst.health_failures + 1
    changes = {"health_failures": failures, "health_error": error[:2000], "health_checked_at": now}
    if failures >= threshold and inst.health != Health.UNHEALTHY:
        changes.update(health=Health.UNHEALTHY, health_since=now)
        message = f"unhealthy after {failures} failed probe(s) in a row: {error}"
        event = InstanceEvent(instance_id=inst.pk, event="health_unhealthy", result=Result.ERROR, message=message)
        return changes, event
    if inst.health not in (Health.FAILING, Health.UNHEALTHY):
        changes.update(health=Health.FAILING, health_since=now)
        return changes, InstanceEvent(instance_id=inst.pk, event="health_failing", result=Result.ERROR, message=error)
    return changes, None


def health_record(rows: list[Instance], results: dict[str, str]) -> HealthReport:
    """Write what the probes of ``rows`` found (backend id → error, empty when healthy).

    Rows still healthy get one UPDATE together; a row whose verdict or failure count changed gets
    its own, conditional on the server it was probed on (a heal may have moved it meanwhile)."""
    now, report = timezone.now(), HealthReport()
    still_healthy, events = [], []
    for inst in rows:
        if inst.backend_id not in results:
            continue
        report.probed += 1
        changes, event = _verdict(inst, results[inst.backend_id], now)
        health = changes.get("health", inst.health)
        report.healthy += health == Health.HEALTHY
        report.failing += health == Health.FAILING
        report.unhealthy += health == Health.UNHEALTHY
        if inst.health == health == Health.HEALTHY:
            still_healthy.append(inst.pk)
            continue
        same_server = Instance.objects.filter(pk=inst.pk, generation=inst.generation, backend_id=inst.backend_id)
        if same_server.update(**changes) and event is not None:
            events.append(event)
    if still_healthy:
        Instance.objects.filter(pk__in=still_healthy).update(health_checked_at=now)
    InstanceEvent.objects.bulk_create(events)
    return report


def health_check(*, backends: list[str] | None = None) -> HealthReport:
    """Probe every ACTIVE instance of a category with a health check, and record the verdicts."""
    total, now = HealthReport(), timezone.now()
    parallel = int(conf("HEALTH_CHECK_PARALLEL"))
    for backend in backends or enabled_backends():
        rows = [
            inst
            for inst in Instance.objects.filter(
                backend=backend, status=Status.ACTIVE, task_state="", category__health_check_port__isnull=False
            )
            .exclude(backend_id="")
            .select_related("category")
            .only(*_FIELDS, "launched_at", "category__health_check_port", "category__health_check_path",
                  "category__health_check_threshold", "category__health_check_grace")
            # An appliance that booted within its category's grace may still be starting: not probed yet.
            if not inst.launched_at or (now - inst.launched_at).total_seconds() >= inst.category.health_check_grace
        ]  # fmt: skip
        driver = get_driver(backend)
        for start in range(0, len(rows), _BATCH):
            batch = rows[start : start + _BATCH]
            targets = [probe_target(inst, inst.addresses, inst.backend_id) for inst in batch]
            try:
                results = driver.probe_many(targets, parallel=parallel)
            except DriverError:
                # The backend's API is down (the sim's outage): no verdict either way.
                total.errors += 1
                break
            report = health_record(batch, results)
            for name in ("probed", "healthy", "failing", "unhealthy"):
                setattr(total, name, getattr(total, name) + getattr(report, name))
    return total
