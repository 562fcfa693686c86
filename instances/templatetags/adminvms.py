from django import template
from django.db.models import Count

from instances import services
from instances.choices import Status
from instances.drivers.registry import is_simulated
from instances.models import Instance
from tenancy import policy

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


@register.inclusion_tag("console/_breaker_banner.html", takes_context=True)
def heal_breaker_banner(context):
    """The banner of every console page while an auto-heal circuit breaker is open (provider admins)."""
    request = context.get("request")
    user = getattr(request, "user", None)
    if not policy.is_provider_admin(user):
        return {"breakers": []}
    return {
        "breakers": list(services.open_breakers().order_by("opened_at", "pk")),
        "can_resume": bool(policy.can_operate_fleet(user)),
        "csrf_token": context.get("csrf_token"),
        "next": request.get_full_path(),
    }


@register.simple_tag
def spares_ready() -> dict:
    """Category id → its ready (ACTIVE) spares, for the console's categories page."""
    ready = Instance.objects.filter(is_spare=True, status=Status.ACTIVE)
    return dict(ready.values("category").annotate(n=Count("pk")).values_list("category", "n"))
