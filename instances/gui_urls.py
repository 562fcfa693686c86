"""The URLconf of an appliance's GUI origin: the ticket handover and the proxy, nothing else.

Every dashboard URL (pages, API, admin, static files) answers 404 here; the
dashboard's URLconf has no proxy (``GuiOriginMiddleware`` picks this one by host).
"""

from django.urls import path, re_path

from . import gui_views

urlpatterns = [
    path("__adminvms__/ticket", gui_views.ticket, name="gui-ticket"),
    re_path(r"^__adminvms__(?:/|$)", gui_views.not_found),  # reserved for the dashboard, never the appliance's
    path("", gui_views.appliance, name="gui-root"),
    path("<path:path>", gui_views.appliance, name="gui-path"),
]

handler404 = "instances.gui_views.not_found"
handler500 = "instances.gui_views.server_error"
