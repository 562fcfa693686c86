"""How an instance is shown: which fields a user may read, its launch progress,
its row in a table with the buttons the policy allows, and which page shows it.

Neither a rule nor a read: the REST API and the web pages pass what they show
through here, so both show the same thing to the same user.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.urls import reverse

from tenancy import policy

from . import operations
from .choices import ActionStatus, Status, TaskState
from .models import Instance, InstanceAction, InstanceEvent
from .selectors import open_actions

# What a member reads instead of a backend's error text (rule 9); the text itself stays
# with provider admins, in the console and in the log.
PLAIN_FAULT = "The instance ran into an error; the provider has been told."

# Never shown to members for appliance and provider categories (rule 2).
RESTRICTED_FIELDS = frozenset({"backend_id", "host", "management_endpoint", "metadata", "availability_zone"})


def present_instance(data: dict, *, user, instance: Instance) -> dict:
    """Drop what ``user`` may not see of ``instance`` from ``data`` (field name → value).

    The one place that chooses the restricted field set: the REST API and the
    web pages both pass their data through it.
    """
    if "fault" in data:
        data["fault"] = shown_fault(user, data["fault"])
    if not policy.sees_restricted_view(user, instance):
        data["restricted"] = False
        return data
    data = {k: v for k, v in data.items() if k not in RESTRICTED_FIELDS}
    if "addresses" in data:
        data["addresses"] = {k: v for k, v in (data["addresses"] or {}).items() if k == "project"}
    data["restricted"] = True
    return data


def shown_fault(user, fault: str) -> str:
    """The fault as ``user`` reads it: the backend's text for provider admins, a plain sentence for others."""
    return fault if not fault or policy.sees_backend_errors(user) else PLAIN_FAULT


def shown_event_message(user, event: InstanceEvent) -> str:
    """An event's message as ``user`` reads it: errors carry backend texts, which only provider admins read."""
    if event.result == InstanceEvent.Result.ERROR and not policy.sees_backend_errors(user):
        return PLAIN_FAULT
    return event.message


def timeline(user, events) -> list[dict]:
    """The events of an instance's timeline, with the messages ``user`` may read."""
    return [
        {
            "result": e.result,
            "event": e.event,
            "message": shown_event_message(user, e),
            "created_at": e.created_at,
            "action": e.action.action if e.action else "",
            "requested_by": e.action.requested_by.username if e.action and e.action.requested_by else "",
        }
        for e in events
    ]


def instance_detail(user, instance: Instance) -> dict:
    """The fields of the detail pages, restricted like the API's."""
    data = {
        "fault": instance.fault,
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


# --- tables and pages -----------------------------------------------------------------


def columns_for(user) -> str:
    """Which columns an instance table shows: decided by who asks, never by the request.

    Provider admins get the console's (category, project, host); everybody else the portal's.
    """
    return "console" if policy.is_provider_admin(user) else "portal"


def detail_url(user, instance: Instance) -> str:
    """The page that shows ``instance`` to ``user``: the console's, the portal's, or the restricted appliance page."""
    if policy.is_provider_admin(user):
        return reverse("console-instance", args=[instance.pk])
    if policy.sees_restricted_view(user, instance):
        return reverse("portal-appliance", args=[instance.pk])
    return reverse("portal-instance", args=[instance.pk])


def instance_row(user, instance: Instance, action: InstanceAction | None = None, error: str = "") -> dict:
    """One table row: the row actions the policy allows now, progress, polling, the link."""
    buttons = [
        {"op": op.name, "label": op.label, "icon": op.icon, "confirm": op.confirmation(instance.name)}
        for op in operations.ROW_ACTIONS
        if policy.can(user, op.name, instance)
    ]
    return {
        "instance": instance,
        "ops": buttons,
        "progress": launch_progress(instance, action),
        "poll": instance.is_transitional,
        "url": detail_url(user, instance),
        "fault": shown_fault(user, instance.fault),
        "error": error,
    }


def instance_rows(user, instances) -> list[dict]:
    """The rows of a table, with the open actions of all of them read in one query."""
    actions = open_actions(instances)
    return [instance_row(user, i, actions.get(i.pk)) for i in instances]
