"""How an instance is shown: which fields a user may read, its launch progress,
its row in a table with the buttons the policy allows, and which page shows it.

Neither a rule nor a read: the REST API and the web pages pass what they show
through here, so both show the same thing to the same user.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.urls import reverse

from tenancy import policy

from . import events, operations
from .choices import ActionStatus, Health, RolloutStatus, Status, TaskState
from .models import Instance, InstanceAction, InstanceEvent, Rollout
from .selectors import allowed_operations, open_actions
from .services import rollout_verbs

# What a member reads instead of a backend's error text (rule 9); the text itself stays
# with provider admins, in the console and in the log.
PLAIN_FAULT = "The instance ran into an error; the provider has been told."

# The health check's details: what members of appliance and provider categories never read; they
# read ``health`` alone, as "healthy" or "degraded" (``member_health``).
HEALTH_DETAILS = frozenset({"health_failures", "health_since", "health_checked_at", "health_error", "generation"})

# Never shown to members for appliance and provider categories (rule 2).
RESTRICTED_FIELDS = frozenset(
    {"backend_id", "host", "management_endpoint", "metadata", "availability_zone", *HEALTH_DETAILS}
)

# Never shown to anybody but provider admins: spares are the provider's business.
ADMIN_ONLY_FIELDS = frozenset({"is_spare"})

# What a member reads instead of a probe's error text: it names addresses and backend errors (rule 9).
PLAIN_HEALTH_ERROR = "The health check failed."

# The verdict as members of managed categories read it: failing or unhealthy is "degraded".
MEMBER_HEALTH = {Health.HEALTHY: "healthy", Health.FAILING: "degraded", Health.UNHEALTHY: "degraded"}

# The events of an instance's health history: verdicts, a server gone, and the heals that followed.
HEALTH_EVENTS = ("health_failing", "health_unhealthy", "health_recovered", "vanished")


def present_instance(data: dict, *, user, instance: Instance) -> dict:
    """Drop what ``user`` may not see of ``instance`` from ``data`` (field name → value).

    The one place that chooses the restricted field set: the REST API and the
    web pages both pass their data through it.
    """
    if "fault" in data:
        data["fault"] = shown_fault(user, data["fault"])
    if not policy.is_provider_admin(user):
        data = {k: v for k, v in data.items() if k not in ADMIN_ONLY_FIELDS}
        if data.get("health_error"):
            data["health_error"] = PLAIN_HEALTH_ERROR
    if not policy.sees_restricted_view(user, instance):
        data["restricted"] = False
        return data
    data = {k: v for k, v in data.items() if k not in RESTRICTED_FIELDS}
    if "addresses" in data:
        data["addresses"] = {k: v for k, v in (data["addresses"] or {}).items() if k == "project"}
    if "health" in data:
        data["health"] = member_health(data["health"])
    data["restricted"] = True
    return data


def member_health(health: str) -> str | None:
    """The verdict as a member of a managed category reads it: "healthy", "degraded", or ``None`` (not probed)."""
    return MEMBER_HEALTH.get(health)


def shown_fault(user, fault: str) -> str:
    """The fault as ``user`` reads it: the backend's text for provider admins, a plain sentence for others."""
    return fault if not fault or policy.sees_backend_errors(user) else PLAIN_FAULT


def shown_event_message(user, event: InstanceEvent) -> str:
    """An event's message as ``user`` reads it: the stored text (servers, backends, accounts) for provider
    admins, the event's sentence from the table of events for everybody else (rule 9)."""
    if policy.sees_backend_errors(user):
        return event.message
    return events.member_text(event.event)


def shown_event_name(user, event: InstanceEvent, instance: Instance) -> str:
    """An event's name as ``user`` reads it: in the restricted view a failing or unhealthy verdict is
    "health_degraded", as the appliance's health is "degraded" (``instance``: the event's, already loaded)."""
    if policy.sees_restricted_view(user, instance):
        return events.restricted_name(event.event)
    return event.event


def shown_account(user, account) -> str:
    """Who did something (an action's requester, an instance's creator) as ``user`` reads it: the account's
    name for provider admins; for others their own project's users by name, and the provider's accounts
    and the provider's own work (no account) as "the provider" (rule 9)."""
    if policy.is_provider_admin(user):
        return account.username if account is not None else ""
    if account is None or policy.is_provider_admin(account):
        return events.THE_PROVIDER
    return account.username


def shown_requester(user, event: InstanceEvent) -> str:
    """The requester of the action an event belongs to, as ``user`` reads it; empty for reconcile's own events."""
    return shown_account(user, event.action.requested_by) if event.action else ""


def timeline(user, rows, instance: Instance) -> list[dict]:
    """The events of ``instance``'s timeline, with the names and messages ``user`` may read."""
    return [
        {
            "result": e.result,
            "event": shown_event_name(user, e, instance),
            "message": shown_event_message(user, e),
            "created_at": e.created_at,
            "action": e.action.action if e.action else "",
            "requested_by": shown_requester(user, e),
        }
        for e in rows
    ]


# The fields of the detail pages (besides name, status and the related names the templates read).
DETAIL_FIELDS = (
    "fault", "backend", "backend_id", "host", "availability_zone", "addresses", "management_endpoint", "metadata",
    "health", "health_failures", "health_since", "health_checked_at", "health_error", "generation", "is_spare",
)  # fmt: skip


def instance_detail(user, instance: Instance) -> dict:
    """The fields of the detail pages, restricted like the API's."""
    return present_instance({name: getattr(instance, name) for name in DETAIL_FIELDS}, user=user, instance=instance)


# Badges of the verdicts, and of the "degraded" members read.
HEALTH_CLASSES = {
    Health.HEALTHY: "text-bg-success",
    Health.FAILING: "text-bg-warning",
    Health.UNHEALTHY: "text-bg-danger",
    "degraded": "text-bg-warning",
}


# The overview's count of instances per verdict ("unchecked": not probed yet), in this order.
HEALTH_SUMMARY = (
    (Health.HEALTHY.value, HEALTH_CLASSES[Health.HEALTHY]),
    (Health.FAILING.value, HEALTH_CLASSES[Health.FAILING]),
    (Health.UNHEALTHY.value, HEALTH_CLASSES[Health.UNHEALTHY]),
    ("unchecked", "text-bg-light border"),
)


def health_badge(user, instance: Instance) -> dict | None:
    """The health badge of ``instance`` as ``user`` may read it (label and class); ``None``: not probed."""
    shown = present_instance({"health": instance.health}, user=user, instance=instance)["health"]
    if not shown:
        return None
    return {"label": shown, "css": HEALTH_CLASSES.get(shown, "text-bg-light")}


def maintenance(instance: Instance) -> bool:
    """Whether ``instance`` is being moved to a new server (a heal or a rollout's replacement): its GUI
    may be unavailable for a moment. The operations that replace a server say so in the table."""
    return bool(instance.task_state) and instance.task_state in _REPLACING


_REPLACING = frozenset(op.task_state for op in operations.TABLE if op.replaces)


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


def instance_row(
    user, instance: Instance, action: InstanceAction | None = None, error: str = "", memo: dict | None = None
) -> dict:
    """One table row: the row actions the policy allows now, progress, polling, the link (``memo``: see
    ``allowed_operations``)."""
    allowed = allowed_operations(user, instance, memo)
    buttons = [
        {"op": op.name, "label": op.label, "icon": op.icon, "confirm": op.confirmation(instance.name)}
        for op in operations.ROW_ACTIONS
        if op.name in allowed
    ]
    return {
        "instance": instance,
        "ops": buttons,
        "health": health_badge(user, instance),
        "progress": launch_progress(instance, action),
        "poll": instance.is_transitional,
        "url": detail_url(user, instance),
        "fault": shown_fault(user, instance.fault),
        "error": error,
    }


def instance_rows(user, instances) -> list[dict]:
    """The rows of a table, with the open actions of all of them read in one query."""
    actions, memo = open_actions(instances), {}
    return [instance_row(user, i, actions.get(i.pk), memo=memo) for i in instances]


# --- rollouts -------------------------------------------------------------------------------

# A rollout's buttons: verb, label, icon and the question to confirm; offered when the service takes the verb.
ROLLOUT_VERBS = (
    ("pause", "Pause", "bi-pause-circle", ""),
    ("resume", "Resume", "bi-play-circle", ""),
    (
        "abort", "Abort", "bi-x-octagon",
        "Abort the rollout of '{slug}'? Replacements under way finish; the other instances stay on their image.",
    ),
)  # fmt: skip
ROLLOUT_CLASSES = {
    RolloutStatus.RUNNING: "text-bg-info",
    RolloutStatus.PAUSED: "text-bg-secondary",
    RolloutStatus.SUCCEEDED: "text-bg-success",
    RolloutStatus.FAILED: "text-bg-danger",
    RolloutStatus.ABORTED: "text-bg-warning",
}


def rollout_row(rollout: Rollout, progress: dict[str, int], error: str = "") -> dict:
    """One rollout of the console's table: its progress as shares of the bar, its buttons, polling."""
    done = sum(progress.values())
    # Instances that turned ACTIVE after the start are replaced too: the bar is of whichever is larger.
    whole = max(rollout.total, done, 1)
    return {
        "rollout": rollout,
        "progress": progress,
        "done": done,
        "total": max(rollout.total, done),
        "bars": [
            {"part": part, "css": css, "count": progress[part], "percent": round(100 * progress[part] / whole)}
            for part, css in (("succeeded", "bg-success"), ("failed", "bg-danger"), ("running", "bg-info"))
        ],
        "css": ROLLOUT_CLASSES.get(rollout.status, "text-bg-light"),
        "verbs": [
            {"verb": verb, "label": label, "icon": icon, "confirm": confirm.format(slug=rollout.category.slug)}
            for verb, label, icon, confirm in ROLLOUT_VERBS
            if verb in rollout_verbs(rollout)
        ],
        "poll": rollout.status == RolloutStatus.RUNNING,
        "error": error,
    }
