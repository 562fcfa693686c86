"""Fixtures shared by every test: the demo data of DESIGN.md §7 and API clients."""

from __future__ import annotations

import io
from types import SimpleNamespace

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
def run_tasks(django_capture_on_commit_callbacks):
    """``with run_tasks(): …``: tasks enqueued on commit run (eagerly) when the block ends."""

    def make():
        return django_capture_on_commit_callbacks(execute=True)

    return make
