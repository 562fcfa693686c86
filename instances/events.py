"""The events of an instance's timeline: one row an event, with what a member reads of it.

The message an event is stored with is the provider's: it names servers, backends, images and
accounts (``now on server 6f1c… (was 0b2e…)``, ``reboot requested by admin``). Members never read
it (rule 9); they read the row's ``member`` sentence, the same for every instance, so nothing a
member reads is ever made of a backend's words. ``restricted_name`` is the event's name in the
restricted view of appliance and provider categories, where health is only "healthy" or
"degraded".
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EventType:
    name: str
    member: str
    restricted_name: str = ""


TABLE = (
    EventType("requested", "Requested."),
    EventType("queue_unavailable", "Waiting for the task queue; it runs once the queue is back."),
    EventType("queue_resent", "Sent to the task queue again."),
    EventType("assigned", "A ready server was taken from the provider's pool."),
    EventType("backend_called", "Sent to the cloud."),
    EventType("spawning", "Creating the server."),
    EventType("locked", "Locked: only the provider may change the server."),
    EventType("moved", "Moved to a new server."),
    EventType("old_server_deleted", "The previous server was removed."),
    EventType("old_server_left", "The previous server could not be removed; the provider has been told."),
    EventType("replacement_deleted", "The replacement server was removed."),
    EventType("replacement_left", "The replacement server could not be removed; the provider has been told."),
    EventType("release_failed", "Something was left at the cloud; the provider has been told."),
    EventType("finished", "Finished."),
    EventType("failed", "Failed; the provider has been told."),
    EventType("adopted", "Brought under management by the provider."),
    EventType("status_synced", "The status was updated from the cloud."),
    EventType("endpoint_synced", "The addresses were updated from the cloud."),
    EventType("vanished", "The server is gone from the cloud; the provider has been told."),
    EventType("health_failing", "The health check failed.", "health_degraded"),
    EventType("health_unhealthy", "The health check failed repeatedly.", "health_degraded"),
    EventType("health_recovered", "Healthy again."),
)
BY_NAME = {row.name: row for row in TABLE}

# What a member reads of an event this table does not name (none is written; a new one reads this
# until its row is added, never the provider's text).
UNKNOWN_MEMBER_TEXT = "Updated by the provider."

# How provider accounts appear to members, in events and on instances (rule 9).
THE_PROVIDER = "the provider"


def member_text(name: str) -> str:
    """What a member reads of an event named ``name``."""
    row = BY_NAME.get(name)
    return row.member if row else UNKNOWN_MEMBER_TEXT


def restricted_name(name: str) -> str:
    """The event's name in the restricted view of appliance and provider categories."""
    row = BY_NAME.get(name)
    return (row.restricted_name or row.name) if row else name
