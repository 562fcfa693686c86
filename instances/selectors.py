"""Reads about instances that more than one interface needs (API, console, portal)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db.models import Count

from tenancy import policy
from tenancy.errors import NotFound

from . import operations
from .choices import ActionStatus, Status
from .models import Instance, InstanceAction, InstanceEvent, ReconcileRun


def instance_get_visible(*, user, instance_id) -> Instance:
    """The instance if ``user`` may see it; NotFound otherwise (404, never 403: nothing leaks)."""
    try:
        return Instance.objects.with_related().visible_to(user).get(pk=instance_id)
    except (Instance.DoesNotExist, ValidationError, ValueError, TypeError) as exc:  # a malformed id is unknown too
        raise NotFound("No such instance.") from exc


def allowed_operations(user, instance: Instance) -> list[str]:
    """The operations of the table ``user`` may run on ``instance`` now: its buttons and its GUI (launch, and
    the replacements only rollouts start, aside)."""
    return [
        op.name
        for op in operations.TABLE
        if (op.row_action or op.needs_endpoint) and policy.can(user, op.name, instance)
    ]


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
