"""Reads about instances that more than one interface needs (API, console, portal)."""

from __future__ import annotations

from django.core.exceptions import ValidationError

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


def allowed_operations(user, instance: Instance, memo: dict | None = None) -> list[str]:
    """The operations of the table ``user`` may run on ``instance`` now: its buttons and its GUI (launch, and
    the replacements only rollouts start, aside). A list passes one ``memo`` for all its rows: the policy
    is then asked once per ``policy.can_key``, not for every operation of every row."""
    key = policy.can_key(user, instance) if memo is not None else None
    if key is not None and key in memo:
        return memo[key]
    allowed = [
        op.name
        for op in operations.TABLE
        if (op.row_action or op.needs_endpoint) and policy.can(user, op.name, instance)
    ]
    if memo is not None:
        memo[key] = allowed
    return allowed


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
    """Recent events, instances in ERROR, last drift (the counts: ``services.overview_counts``). For
    provider admins, who see every instance (the console)."""
    if not policy.is_provider_admin(user):
        raise NotFound("The overview is the provider's.")
    live = Instance.objects.live()
    return {
        "errors": list(live.filter(status=Status.ERROR).with_related().order_by("-updated_at")[:10]),
        "events": list(
            InstanceEvent.objects.select_related("instance", "action__requested_by").order_by("-created_at")[:12]
        ),
        "drift": list(ReconcileRun.objects.order_by("-started_at")[:3]),
    }
