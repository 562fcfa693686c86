"""seed_demo: fixed names, idempotent (DESIGN.md §7)."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from categories.models import Flavor, Image, InstanceCategory, Volume
from tenancy.models import Membership, Project


def _snapshot():
    users = get_user_model().objects.order_by("username")
    return {
        "users": [(u.username, u.is_staff, u.password) for u in users],
        "memberships": sorted(Membership.objects.values_list("user__username", "project__slug", "role")),
        "projects": sorted(Project.objects.values_list("slug", flat=True)),
        "categories": sorted(InstanceCategory.objects.values_list("slug", "management", "user_visible", "is_active")),
        "flavors": sorted(Flavor.objects.values_list("name", "vcpus", "ram_mb", "disk_gb")),
        "images": sorted(Image.objects.values_list("name", "kind")),
        "volumes": Volume.objects.count(),
    }


@pytest.mark.django_db
def test_seed_demo_prints_passwords_once_and_a_second_run_changes_nothing():
    first = io.StringIO()
    call_command("seed_demo", stdout=first)
    assert "alice" in first.getvalue() and "Demo users" in first.getvalue()
    before = _snapshot()
    second = io.StringIO()
    call_command("seed_demo", stdout=second)
    assert "Demo users" not in second.getvalue()  # no new passwords: nothing was created
    assert _snapshot() == before
    assert before["memberships"] == [
        ("alice", "acme", "member"), ("bob", "globex", "member"), ("gina", "globex", "reader"),
        ("rita", "acme", "reader"),
    ]  # fmt: skip
    assert [c[0] for c in before["categories"]] == ["cache", "lb", "standard", "vsa"]


@pytest.mark.django_db
def test_seed_demo_uses_the_password_from_the_environment(settings):
    settings.ADMINVMS = {**settings.ADMINVMS, "DEMO_PASSWORD": "chosen-one"}
    call_command("seed_demo", stdout=io.StringIO())
    assert get_user_model().objects.get(username="bob").check_password("chosen-one")
