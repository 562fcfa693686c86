"""The audit trail: actions and their events, written the same way by every service."""

from __future__ import annotations

from datetime import timedelta

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from ..models import Instance, InstanceAction, InstanceEvent

Result = InstanceEvent.Result
# The one Celery task that runs every action (instances.tasks.run_action), named so
# that this layer does not import the tasks module (which calls us).
ACTION_TASK = "instances.tasks.run_action"


def conf(key: str):
    return settings.ADMINVMS[key]


def event_record(
    instance_id, action: InstanceAction | None, event: str, result: str = Result.INFO, message: str = ""
) -> InstanceEvent:
    return InstanceEvent.objects.create(
        instance_id=instance_id, action=action, event=event, result=result, message=message
    )


def action_open(*, instance: Instance, user, action: str, params: dict | None = None, rollout=None) -> InstanceAction:
    """Write the action and its "requested" event, and enqueue its task once the transaction commits.

    The action's id is the Celery task id.
    """
    record = InstanceAction.objects.create(
        instance=instance,
        action=action,
        requested_by=user if getattr(user, "is_authenticated", False) else None,
        params=params or {},
        rollout=rollout,
        deadline=timezone.now() + timedelta(seconds=conf("ACTION_TIMEOUT")),
    )
    event_record(instance.pk, record, "requested", message=f"{action} requested by {user or 'system'}")
    action_id = str(record.pk)
    transaction.on_commit(lambda: current_app.tasks[ACTION_TASK].apply_async(args=[action_id], task_id=action_id))
    return record
