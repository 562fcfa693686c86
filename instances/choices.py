from django.db import models


class Status(models.TextChoices):
    BUILDING = "BUILDING"
    ACTIVE = "ACTIVE"
    STOPPED = "STOPPED"
    REBOOTING = "REBOOTING"
    DELETING = "DELETING"
    DELETED = "DELETED"
    ERROR = "ERROR"


class TaskState(models.TextChoices):
    """The action in progress; empty when none is."""

    SCHEDULING = "scheduling"
    SPAWNING = "spawning"
    REBOOTING = "rebooting"
    STOPPING = "stopping"
    STARTING = "starting"
    DELETING = "deleting"


class ActionStatus(models.TextChoices):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
