"""Routing by host: ``<instance-uuid>.<GUI_DOMAIN>`` is an appliance's GUI origin, served by
its own URLconf and views; every other allowed host is the dashboard."""

from __future__ import annotations

from django.core.handlers.exception import convert_exception_to_response
from django.http import Http404
from django.urls import resolve, set_urlconf

from . import gui_origin

# Ours on every answer of a GUI host, the appliance's included: no page of the GUI
# origin may be framed (clickjacking), nor read by another origin as a subresource.
# Nothing stricter: the appliance's pages run its own scripts and styles, and an
# origin of its own is what keeps them from the dashboard, not a sandbox.
FRAME_POLICY = "frame-ancestors 'none'"


class GuiOriginMiddleware:
    """Sits right after ``SecurityMiddleware``: a GUI host's request goes to the GUI views and
    never through the dashboard's middleware (WhiteNoise would serve the dashboard's
    ``/static/`` over the appliance's own, sessions and CSRF would set cookies)."""

    def __init__(self, get_response):
        self.get_response = get_response
        self.gui_response = convert_exception_to_response(self._dispatch)

    def __call__(self, request):
        is_gui, instance_id = gui_origin.host_route(request.get_host())
        if not is_gui:
            return self.get_response(request)
        request.gui_instance_id = instance_id
        request.urlconf = gui_origin.GUI_URLCONF
        set_urlconf(gui_origin.GUI_URLCONF)  # handler404/500 and reverse() are the GUI's from here on
        response = self.gui_response(request)
        response["Content-Security-Policy"] = ", ".join(
            p for p in (response.get("Content-Security-Policy"), FRAME_POLICY) if p
        )
        response["X-Frame-Options"] = "DENY"
        response["Cross-Origin-Resource-Policy"] = "same-origin"
        return response

    @staticmethod
    def _dispatch(request):
        if request.gui_instance_id is None:
            raise Http404("No appliance at this host.")
        match = resolve(request.path_info, urlconf=gui_origin.GUI_URLCONF)
        request.resolver_match = match
        return match.func(request, *match.args, **match.kwargs)
