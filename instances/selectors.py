"""Reads about instances that more than one interface needs (API, console, portal)."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count

from tenancy import policy

from .choices import ActionStatus, Status, TaskState
from .models import Instance, InstanceAction, InstanceEvent, ReconcileRun

# Never shown to members for appliance and provider categories (rule 2).
RESTRICTED_FIELDS = frozenset({"backend_id", "host", "management_endpoint", "metadata", "availability_zone"})


def present_instance(data: dict, *, user, instance: Instance) -> dict:
    """Drop what ``user`` may not see of ``instance`` from ``data`` (field name → value).

    The one place that chooses the restricted field set: the REST API and the
    web pages both pass their data through it.
    """
    if not policy.sees_restricted_view(user, instance):
        data["restricted"] = False
        return data
    data = {k: v for k, v in data.items() if k not in RESTRICTED_FIELDS}
    if "addresses" in data:
        data["addresses"] = {k: v for k, v in (data["addresses"] or {}).items() if k == "project"}
    data["restricted"] = True
    return data


def instance_detail(user, instance: Instance) -> dict:
    """The fields of the detail pages, restricted like the API's."""
    data = {
        "backend": instance.backend,
        "backend_id": instance.backend_id,
        "host": instance.host,
        "availability_zone": instance.availability_zone,
        "addresses": instance.addresses,
        "management_endpoint": instance.management_endpoint,
        "metadata": instance.metadata,
    }
    return present_instance(data, user=user, instance=instance)


@dataclass(frozen=True)
class Progress:
    label: str
    percent: int


# A launch's visible steps: queued → scheduling → spawning → active.
def launch_progress(instance: Instance, action: InstanceAction | None) -> Progress | None:
    if instance.status != Status.BUILDING:
        return None
    if instance.task_state == TaskState.SPAWNING:
        return Progress("spawning", 70)
    if action is not None and action.status == ActionStatus.RUNNING:
        return Progress("scheduling", 40)
    return Progress("queued", 15)


def open_actions(instances) -> dict:
    """The open action of each instance, in one query."""
    ids = [i.pk for i in instances if i.is_transitional]
    if not ids:
        return {}
    actions = InstanceAction.objects.filter(
        instance_id__in=ids, status__in=[ActionStatus.PENDING, ActionStatus.RUNNING]
    )
    return {a.instance_id: a for a in actions}


def overview(user) -> dict:
    """Counts per category, status and backend, recent events, instances in ERROR, last drift."""
    live = Instance.objects.visible_to(user).live()
    return {
        "by_category": list(live.values("category__slug", "category__name").annotate(n=Count("pk")).order_by("-n")),
        "by_status": list(live.values("status").annotate(n=Count("pk")).order_by("status")),
        "by_backend": list(live.values("backend").annotate(n=Count("pk")).order_by("backend")),
        "total": live.count(),
        "errors": list(live.filter(status=Status.ERROR).with_related().order_by("-updated_at")[:10]),
        "events": list(
            InstanceEvent.objects.filter(instance__in=Instance.objects.visible_to(user))
            .select_related("instance", "action__requested_by")
            .order_by("-created_at")[:12]
        ),
        "drift": list(ReconcileRun.objects.order_by("-started_at")[:3]),
    }
