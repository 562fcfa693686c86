"""The console's category form as an operator uses it, in a real browser (issue 28): Save of what the
page shows saves it unchanged; one change of each kind of field lands; what does not apply hides."""

from __future__ import annotations

import pytest
from django.forms.models import model_to_dict
from playwright.sync_api import expect

from categories.models import InstanceCategory

from .conftest import screenshot, sign_in

pytestmark = [pytest.mark.browser]


@pytest.fixture
def admin_page(browser, demo, live_server):
    return sign_in(browser, live_server.url, "admin")


def _state(slug: str) -> dict:
    category = InstanceCategory.objects.get(slug=slug)
    state = model_to_dict(category)
    state["allowed_flavors"] = sorted(f.name for f in category.allowed_flavors.all())
    state.pop("updated_at", None)
    return state


@pytest.mark.parametrize("slug", ["standard", "lb", "vsa", "cache"])
def test_save_as_shown_changes_nothing_and_shows_no_error(admin_page, slug):
    InstanceCategory.objects.filter(slug=slug).update(extra_metadata={"service": "storage"})
    before = _state(slug)
    page = admin_page
    page.goto(f"/console/categories/{slug}/")
    page.click("#category-form button[type=submit]")
    page.wait_for_url("**/console/categories/")
    expect(page.locator(".alert-success")).to_contain_text(f"Category '{slug}' saved.")
    assert _state(slug) == before


def test_one_change_of_each_kind_lands_through_the_page(admin_page):
    page = admin_page
    page.goto("/console/categories/vsa/")
    screenshot(page, "console-category-form")
    page.fill("#id_name", "Storage array")  # text
    page.fill("#id_max_instances", "5")  # number
    page.select_option("#id_anti_affinity", "soft-anti-affinity")  # select
    page.uncheck("#id_auto_heal")  # checkbox
    page.get_by_label("m1.large", exact=True).uncheck()  # one of many
    page.fill("#id_extra_metadata", '{"service": "storage"}')  # JSON
    page.click("#category-form button[type=submit]")
    page.wait_for_url("**/console/categories/")
    vsa = InstanceCategory.objects.get(slug="vsa")
    assert (vsa.name, vsa.max_instances, vsa.anti_affinity, vsa.auto_heal) == (
        "Storage array",
        5,
        "soft-anti-affinity",
        False,
    )
    assert vsa.extra_metadata == {"service": "storage"}
    assert {f.name for f in vsa.allowed_flavors.all()} == {"m1.small"}
    page.goto("/console/categories/vsa/")
    expect(page.locator("#id_extra_metadata")).to_have_value('{"service": "storage"}')


def test_member_operations_hide_for_a_provider_managed_category(admin_page):
    page = admin_page
    page.goto("/console/categories/lb/")
    operations = page.locator("[data-field-wrapper=user_operations]")
    expect(operations).to_be_hidden()
    expect(page.locator("#no-member-operations")).to_be_visible()
    page.goto("/console/categories/vsa/")
    expect(operations).to_be_visible()
    expect(page.locator("#no-member-operations")).to_be_hidden()
    page.select_option("#id_management", "provider")
    expect(operations).to_be_hidden()  # and what was ticked is no longer chosen
    page.click("#category-form button[type=submit]")
    page.wait_for_url("**/console/categories/")
    vsa = InstanceCategory.objects.get(slug="vsa")
    assert (vsa.management, vsa.user_operations) == ("provider", [])
