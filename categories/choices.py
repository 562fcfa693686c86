from django.db import models


class Kind(models.TextChoices):
    VM = "vm", "Virtual machine"
    CONTAINER = "container", "Container"


class Management(models.TextChoices):
    PROVIDER = "provider", "Provider-managed"
    APPLIANCE = "appliance", "Appliance"
    USER = "user", "User"


class NetworkPlacement(models.TextChoices):
    PROJECT = "project", "Project network"
    MANAGEMENT = "management", "Management network"
    BOTH = "both", "Both (dual-homed)"


class AntiAffinity(models.TextChoices):
    NONE = "", "None"
    HARD = "anti-affinity", "Anti-affinity"
    SOFT = "soft-anti-affinity", "Soft anti-affinity"


class Operation(models.TextChoices):
    """Operations a category may allow project members to invoke."""

    LAUNCH = "launch", "Launch"
    REBOOT = "reboot", "Reboot"
    STOP = "stop", "Stop"
    START = "start", "Start"
    TERMINATE = "terminate", "Terminate"
    APPLIANCE_GUI = "appliance_gui", "Open appliance GUI"


STANDARD_SLUG = "standard"
