"""Fixtures shared by every test: the demo data of DESIGN.md §7 and API clients."""

from __future__ import annotations

import io
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
from rest_framework.test import APIClient

from categories.models import Flavor, Image, InstanceCategory
from tenancy.models import Project

DEMO_PASSWORD = "demo-password-for-tests"


@pytest.fixture
def demo(db, settings, monkeypatch):
    """The seeded demo: users admin/alice/rita/bob/gina, projects acme/globex,
    categories standard/lb/vsa/cache, flavors m1.*, an image per category."""
    settings.ADMINVMS = {**settings.ADMINVMS, "DEMO_PASSWORD": DEMO_PASSWORD}
    call_command("seed_demo", quiet=True, stdout=io.StringIO())
    users = {u.username: u for u in get_user_model().objects.all()}
    return SimpleNamespace(
        **users,
        acme=Project.objects.get(slug="acme"),
        globex=Project.objects.get(slug="globex"),
        categories={c.slug: c for c in InstanceCategory.objects.all()},
        flavors={f.name: f for f in Flavor.objects.all()},
        images={i.name: i for i in Image.objects.all()},
    )


@pytest.fixture
def api():
    """``api(user)`` → an APIClient authenticated as ``user`` (``None``: anonymous)."""

    def make(user=None) -> APIClient:
        client = APIClient()
        if user is not None:
            client.force_authenticate(user)
        return client

    return make


@pytest.fixture
def web():
    """``web(user, **client_kwargs)`` → a Django test client signed in as ``user`` (``None``: anonymous)."""

    def make(user=None, **client_kwargs) -> Client:
        client = Client(**client_kwargs)
        if user is not None:
            client.force_login(user)
        return client

    return make


@pytest.fixture
def gui_client(web):
    """``gui_client(user, instance)`` → a test client on the instance's GUI origin, signed in there
    as a browser is: "Open appliance GUI" on the dashboard, then the ticket on the GUI host.

    Its requests say ``Sec-Fetch-Site: same-origin``, as the appliance's own pages' do;
    ``.gui_host`` is the host, ``.dashboard`` the dashboard client whose session opened it.
    """

    def open_gui(user, instance, **client_kwargs) -> Client:
        dashboard = web(user)
        response = dashboard.post(f"/portal/appliances/{instance.pk}/gui/")
        assert response.status_code == 302, response.content
        target = urlsplit(response["Location"])
        client = Client(HTTP_HOST=target.netloc, HTTP_SEC_FETCH_SITE="same-origin", **client_kwargs)
        landing = client.get(f"{target.path}?{target.query}", HTTP_SEC_FETCH_SITE="cross-site")
        assert landing.status_code == 200, landing.content
        client.gui_host, client.dashboard = target.netloc, dashboard
        return client

    return open_gui


@pytest.fixture
def run_tasks(django_capture_on_commit_callbacks):
    """``with run_tasks(): …``: tasks enqueued on commit run (eagerly) when the block ends."""

    def make():
        return django_capture_on_commit_callbacks(execute=True)

    return make
