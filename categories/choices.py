from django.db import models

from instances.operations import GrantableOperation


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


# The operations a category may grant project members: the grantable rows of the
# operation table (the one vocabulary the catalog reads from instances).
Operation = GrantableOperation

STANDARD_SLUG = "standard"
# The built-in category, as the data migration creates it and as ``category_standard()`` restores it.
STANDARD_DEFAULTS = {
    "name": "Standard",
    "description": "Regular user instances, as before categories existed.",
    "is_builtin": True,
    "kind": "vm",
    "management": "user",
    "user_visible": True,
    "user_operations": ["launch", "reboot", "stop", "start", "terminate"],
    "network_placement": "project",
}
