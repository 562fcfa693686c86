from django.db import models


class Status(models.TextChoices):
    BUILDING = "BUILDING"
    ACTIVE = "ACTIVE"
    STOPPED = "STOPPED"
    REBOOTING = "REBOOTING"
    DELETING = "DELETING"
    DELETED = "DELETED"
    ERROR = "ERROR"


TERMINAL_STATUSES = frozenset({Status.ACTIVE, Status.STOPPED, Status.ERROR, Status.DELETED})


class TaskState(models.TextChoices):
    """The action in progress; empty when none is."""

    SCHEDULING = "scheduling"
    SPAWNING = "spawning"
    REBOOTING = "rebooting"
    STOPPING = "stopping"
    STARTING = "starting"
    DELETING = "deleting"


class ActionType(models.TextChoices):
    LAUNCH = "launch"
    REBOOT = "reboot"
    STOP = "stop"
    START = "start"
    TERMINATE = "terminate"


class ActionStatus(models.TextChoices):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
