"""Where appliance GUIs live: one origin per appliance, ``<instance-uuid>.<GUI_DOMAIN>``.

An appliance's page runs whatever JavaScript the appliance sends. On an origin of
its own it cannot read the dashboard's cookies, CSRF token or pages, nor call the
API as whoever views it (DESIGN.md rule 9), and one appliance cannot read another's.
This module only names things: which host is a GUI host, and the URL of an
appliance's GUI; the views are in ``gui_views``, the routing in ``middleware``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.conf import settings
from django.core import checks
from django.http.request import split_domain_port

# Paths of the GUI origin that belong to the dashboard, not to the appliance.
RESERVED_PREFIX = "/__adminvms__/"
GUI_URLCONF = "instances.gui_urls"


@dataclass(frozen=True)
class GuiDomain:
    host: str
    port: str  # "" when the domain names none


def gui_domain() -> GuiDomain:
    host, port = split_domain_port(settings.ADMINVMS["GUI_DOMAIN"])
    return GuiDomain(host, port)


def host_route(host: str) -> tuple[bool, uuid.UUID | None]:
    """``(is a GUI host, the instance it names)`` for a validated ``Host`` header.

    Every name at or under the GUI domain is a GUI host, so the dashboard never
    answers there; only ``<uuid>.<domain>``, one label deep, names an instance.
    """
    name, _port = split_domain_port(host)
    domain = gui_domain().host
    if name != domain and not name.endswith("." + domain):
        return False, None
    label = name[: -len(domain) - 1] if name != domain else ""
    if "." in label:
        return True, None
    try:
        instance_id = uuid.UUID(label)
    except ValueError:
        return True, None
    # Only the canonical spelling, so that one appliance has exactly one origin.
    return True, (instance_id if str(instance_id) == label else None)


def gui_origin(request, instance_id) -> str:
    """The GUI origin of an instance, as a browser on ``request``'s dashboard reaches it."""
    domain = gui_domain()
    scheme = settings.ADMINVMS["GUI_SCHEME"] or request.scheme
    port = domain.port or split_domain_port(request.get_host())[1]
    default = {"http": "80", "https": "443"}.get(scheme)
    return f"{scheme}://{instance_id}.{domain.host}" + (f":{port}" if port and port != default else "")


def own_origin(request) -> str:
    """The origin a request on a GUI host was sent to."""
    return f"{settings.ADMINVMS['GUI_SCHEME'] or request.scheme}://{request.get_host()}"


@checks.register(checks.Tags.security)
def check_gui_domain(app_configs=None, **kwargs):
    """A GUI domain that the dashboard's cookies reach would undo the separation."""
    errors = []
    domain = gui_domain().host
    if "." not in domain:
        errors.append(
            checks.Error(
                f"ADMINVMS_GUI_DOMAIN '{domain}' has a single label; name a domain of its own "
                "such as gui.localhost or appliances.cloud.example.com.",
                id="adminvms.E001",
            )
        )
    for name in ("SESSION_COOKIE_DOMAIN", "CSRF_COOKIE_DOMAIN", "LANGUAGE_COOKIE_DOMAIN"):
        cookie_domain = (getattr(settings, name, None) or "").lstrip(".").lower()
        if cookie_domain and (domain == cookie_domain or domain.endswith("." + cookie_domain)):
            errors.append(
                checks.Error(
                    f"{name} '{cookie_domain}' would send the dashboard's cookie to every appliance GUI "
                    f"under '{domain}'; leave it unset (host-only) or move ADMINVMS_GUI_DOMAIN out of it.",
                    id="adminvms.E002",
                )
            )
    return errors
