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
    HEALING = "healing"
    REPLACING = "replacing"


class ActionStatus(models.TextChoices):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class Health(models.TextChoices):
    """What the category's health check says of an instance; empty: not probed (yet)."""

    HEALTHY = "healthy"
    FAILING = "failing"  # failed probes, fewer than the category's threshold
    UNHEALTHY = "unhealthy"  # the threshold reached, or the server vanished


class RolloutStatus(models.TextChoices):
    RUNNING = "running"
    PAUSED = "paused"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ABORTED = "aborted"


class BreakerScope(models.TextChoices):
    CATEGORY = "category"
    BACKEND = "backend"
