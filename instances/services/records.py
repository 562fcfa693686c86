"""The audit trail: actions and their events, written the same way by every service."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.db.models import F, Max, Q, QuerySet
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError

from ..choices import ActionStatus
from ..models import Instance, InstanceAction, InstanceEvent

log = logging.getLogger(__name__)

Result = InstanceEvent.Result
# The one Celery task that runs every action (instances.tasks.run_action), named so
# that this layer does not import the tasks module (which calls us).
ACTION_TASK = "instances.tasks.run_action"
# The events of an action whose task the broker did not take (it was down), and of its sending again.
QUEUE_UNAVAILABLE = "queue_unavailable"
QUEUE_RESENT = "queue_resent"


def conf(key: str):
    return settings.ADMINVMS[key]


def event_record(
    instance_id, action: InstanceAction | None, event: str, result: str = Result.INFO, message: str = ""
) -> InstanceEvent:
    return InstanceEvent.objects.create(
        instance_id=instance_id, action=action, event=event, result=result, message=message
    )


def events_record(instance_id, action_id, events: list[tuple[str, str, str]]) -> None:
    """Write several events of one step in one statement: ``(event, result, message)`` each, in order."""
    if events:
        InstanceEvent.objects.bulk_create(
            InstanceEvent(instance_id=instance_id, action_id=action_id, event=event, result=result, message=message)
            for event, result, message in events
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
    action_id, instance_id = str(record.pk), instance.pk
    transaction.on_commit(lambda: action_send(action_id=action_id, instance_id=instance_id, task_id=action_id))
    return record


def action_send(*, action_id, instance_id=None, **options) -> bool:
    """Send the action's task to the broker (``options``: Celery's, a countdown, a retry count).

    When the broker does not answer, the action is not lost: an event says that it waits for the
    task queue, and ``actions_resend`` sends it once the broker is back. The request that opened
    it has been answered (202) by then, or the task that polls it ends. False when not sent.
    """
    try:
        current_app.tasks[ACTION_TASK].apply_async(args=[str(action_id)], **options)
        return True
    except (BrokerError, OSError) as exc:
        # The broker's address is in the exception: for the log, not for the member's timeline.
        log.warning("action %s: the task queue did not answer (%s); it is sent when the queue is back", action_id, exc)
    if instance_id is None:
        instance_id = InstanceAction.objects.filter(pk=action_id).values_list("instance_id", flat=True).first()
    if instance_id is not None:
        InstanceEvent.objects.create(
            instance_id=instance_id, action_id=action_id, event=QUEUE_UNAVAILABLE,
            message="The task queue did not answer; the action waits and is sent once it is back.",
        )  # fmt: skip
    return False


def actions_waiting_for_queue() -> QuerySet[InstanceAction]:
    """Open actions whose task the broker did not take, and that were not sent since; each annotated
    with ``unsent_at``, when the broker last refused it."""
    return (
        InstanceAction.objects.filter(status__in=[ActionStatus.PENDING, ActionStatus.RUNNING])
        .annotate(
            unsent_at=Max("events__created_at", filter=Q(events__event=QUEUE_UNAVAILABLE)),
            sent_at=Max("events__created_at", filter=Q(events__event=QUEUE_RESENT)),
        )
        .filter(unsent_at__isnull=False)
        .filter(Q(sent_at__isnull=True) | Q(sent_at__lte=F("unsent_at")))
    )


def actions_resend() -> int:
    """Send the tasks of the actions waiting for the task queue; how many were sent.

    An action's deadline moves by the time it waited: the broker's outage is not the backend's
    time. While the broker is still down the first one fails again (a new ``queue_unavailable``) and
    the pass stops. A task that did reach the broker before (the error came after it was taken) runs
    twice, which deliveries of an action may (the second finds the action advanced or ended).
    """
    sent = 0
    for action_id in list(actions_waiting_for_queue().order_by("created_at").values_list("pk", flat=True)):
        with transaction.atomic():
            # One pass sends it, when two run at once; the row lock is held until the event is written.
            if not InstanceAction.objects.select_for_update(skip_locked=True).filter(pk=action_id).exists():
                continue
            action = actions_waiting_for_queue().filter(pk=action_id).only("pk", "instance_id").first()
            if action is None:
                continue  # sent by the other pass, or ended
            now = timezone.now()
            InstanceAction.objects.filter(pk=action_id).update(deadline=F("deadline") + (now - action.unsent_at))
            event_record(action.instance_id, action, QUEUE_RESENT, message="sent again to the task queue")
        if not action_send(action_id=action_id, instance_id=action.instance_id, task_id=str(action_id)):
            break  # still down: the rest wait for the next pass
        sent += 1
    if sent:
        log.info("sent %s actions that waited for the task queue", sent)
    return sent
