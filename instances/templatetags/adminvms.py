from django import template

from instances.drivers.registry import is_simulated

register = template.Library()

STATUS_CLASSES = {
    "ACTIVE": "text-bg-success",
    "STOPPED": "text-bg-secondary",
    "BUILDING": "text-bg-info",
    "REBOOTING": "text-bg-info",
    "DELETING": "text-bg-warning",
    "DELETED": "text-bg-light border",
    "ERROR": "text-bg-danger",
}


@register.filter
def status_class(status: str) -> str:
    return STATUS_CLASSES.get(status, "text-bg-light")


@register.inclusion_tag("instances/_backend.html")
def backend_badge(name: str):
    """Which backend an instance runs on; the sim backend is always labelled as simulated."""
    return {"name": name, "simulated": is_simulated(name)}


@register.filter
def get_item(mapping, key):
    return mapping.get(key) if hasattr(mapping, "get") else None
