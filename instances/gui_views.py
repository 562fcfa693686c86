"""The views of an appliance's GUI origin (``<instance-uuid>.<GUI_DOMAIN>``): the ticket
handover and the proxy, and nothing of the dashboard (``gui_urls``).

These hosts get none of the dashboard's middleware after ``GuiOriginMiddleware``:
no session, no CSRF cookie, no messages, no static files. Who is asking comes from
this host's own cookie alone, checked on every request (``services.gui_access``).
Our own pages here are plain HTML rendered without a request, under a policy that
allows nothing but their inline style.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpResponse, StreamingHttpResponse
from django.template.loader import render_to_string

from tenancy.errors import DomainError

from . import gui_origin, proxy
from .drivers.registry import is_simulated
from .services import gui as gui_services

COOKIE = "adminvms_gui"
OWN_PAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def _page(template: str, context: dict, status: int = 200) -> HttpResponse:
    response = HttpResponse(render_to_string(template, context), status=status)
    response["Content-Security-Policy"] = OWN_PAGE_CSP
    response["Cache-Control"] = "no-store"
    return response


def _refusal(message: str, status: int) -> HttpResponse:
    return _page("gui/error.html", {"message": message}, status=status)


def ticket(request):
    """``/__adminvms__/ticket?t=…``: redeem the dashboard's ticket for this host's cookie.

    The answer is a page that moves on to the GUI's start path by itself, rather
    than a redirect: the cookie is ``SameSite=Strict``, which a browser withholds
    for the rest of a redirect chain that began on another site (the dashboard).
    """
    if request.method != "GET":  # a HEAD (a link checker, a preview) must not spend the ticket
        return _refusal("Method not allowed.", 405)
    try:
        redeemed, cookie = gui_services.gui_ticket_redeem(
            token=request.GET.get("t", ""), instance_id=request.gui_instance_id
        )
    except DomainError as exc:
        return _refusal(exc.message, exc.status)
    start = proxy.upstream_path("", redeemed.instance.category.gui_path or "/")
    response = _page("gui/landing.html", {"instance": redeemed.instance, "start": start})
    response.set_cookie(
        COOKIE,
        cookie,
        max_age=int(settings.ADMINVMS["GUI_SESSION_SECONDS"]),
        path="/",
        secure=gui_origin.own_origin(request).startswith("https:"),
        httponly=True,
        samesite="Strict",
    )
    # The (spent) ticket is in this page's URL: no Referer carries it to the appliance.
    response["Referrer-Policy"] = "no-referrer"
    return response


def _cross_origin(request) -> bool:
    """A request this origin did not start: another site, a sibling appliance, the dashboard.

    Fetch Metadata answers for every current browser (``none`` is the user's own
    navigation: the address bar, a bookmark, a reload); without it, unsafe methods
    need an ``Origin`` or ``Referer`` of this origin.
    """
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None:
        return site not in {"same-origin", "none"}
    if request.method in SAFE_METHODS:
        return False
    own = gui_origin.own_origin(request)
    origin = request.headers.get("Origin") or request.headers.get("Referer") or ""
    return not (origin == own or origin.startswith(own + "/"))


def appliance(request, path=""):
    """Every other path of the GUI origin: the appliance's own GUI, through the proxy."""
    if _cross_origin(request):
        return _refusal("Requests from other sites to the appliance GUI are refused.", 403)
    try:
        access = gui_services.gui_access(cookie=request.COOKIES.get(COOKIE), instance_id=request.gui_instance_id)
    except DomainError as exc:
        return _refusal(exc.message, exc.status)
    instance = access.instance
    if is_simulated(instance.backend):
        # The simulated cloud runs nothing: it shows what the proxy would, labelled as simulated.
        return _page("gui/simulated.html", {"instance": instance, "path": path})
    slot = gui_services.gui_slot_acquire(user=access.user)
    if slot is None:
        response = _refusal("Too many appliance GUI requests at once; try again in a moment.", 429)
        response["Retry-After"] = "1"
        return response
    try:
        endpoint = proxy.parse_endpoint(instance.management_endpoint)
        upstream = proxy.forward(
            request,
            endpoint=endpoint,
            path=proxy.upstream_path(path, "/"),
            public_origin=gui_origin.own_origin(request),
            deadline=settings.ADMINVMS["GUI_DEADLINE"],
        )
    except proxy.ProxyRefused as exc:
        gui_services.gui_slot_release(slot_id=slot)
        return _refusal(str(exc), exc.status)
    except Exception:
        # Whatever else ends the request here (a body over Django's upload limit, say), the slot goes back.
        gui_services.gui_slot_release(slot_id=slot)
        raise
    response = StreamingHttpResponse(upstream.body, status=upstream.status)
    for name, value in upstream.headers:
        response[name] = value
    response._resource_closers.append(upstream.close)
    response._resource_closers.append(lambda: gui_services.gui_slot_release(slot_id=slot))
    return response


def not_found(request, exception=None):
    return _refusal("Nothing here.", 404)


def server_error(request):
    return _refusal("The appliance GUI failed; try again.", 500)
