"""The console's and the portal's other forms in a real browser, submitted as they are shown (issue 28):
the catalog's category pickers, new flavor, rollout, access key, launch and the adoption preview."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from categories.models import Flavor, Image, Volume
from instances.models import Instance, Rollout
from tenancy.models import Ec2Credential

from .conftest import sign_in

pytestmark = [pytest.mark.browser]


@pytest.fixture
def as_user(browser, demo, live_server):
    return lambda username: sign_in(browser, live_server.url, username)


def _categories(item) -> set[str]:
    return set(item.categories.values_list("slug", flat=True))


def test_the_catalogs_category_pickers_save_as_shown(as_user, demo):
    page = as_user("admin")
    for url, rows, model in (
        ("/console/images/", "tr[data-image]", Image),
        ("/console/volumes/", "tr[data-volume]", Volume),
    ):
        before = {item.pk: _categories(item) for item in model.objects.all()}
        page.goto(url)
        for n in range(page.locator(f"{rows} form").count()):
            page.goto(url)
            page.locator(f"{rows} form").nth(n).locator("button[type=submit]").click()
            page.wait_for_load_state()
            expect(page.locator(".alert-success")).to_be_visible()
            expect(page.locator(".alert-danger")).to_have_count(0)
        assert {item.pk: _categories(item) for item in model.objects.all()} == before, url
    page.goto("/console/images/")
    page.locator("tr[data-image=debian-12] select").select_option(["standard", "vsa"])
    page.locator("tr[data-image=debian-12] button[type=submit]").click()
    expect(page.locator(".alert-success")).to_contain_text("debian-12")
    assert _categories(demo.images["debian-12"]) == {"standard", "vsa"}


def test_new_flavor_rollout_and_access_key_as_shown(as_user, demo):
    Image.objects.create(name="vsa-2.0", kind="vm", tags=["vsa"])
    page = as_user("admin")
    page.goto("/console/flavors/")
    page.fill("#flavor-form [name=name]", "m2.medium")
    page.fill("#flavor-form [name=vcpus]", "2")
    page.fill("#flavor-form [name=ram_mb]", "4096")
    page.fill("#flavor-form [name=disk_gb]", "40")
    page.click("#flavor-form button[type=submit]")
    expect(page.locator("#flavors")).to_contain_text("m2.medium")
    assert Flavor.objects.filter(name="m2.medium", vcpus=2, ram_mb=4096, disk_gb=40).exists()

    page.goto("/console/rollouts/")
    page.select_option("#rollout-form [name=category]", "vsa")  # the rest as shown
    page.click("#rollout-form button[type=submit]")
    page.wait_for_load_state()
    expect(page.locator(".alert-danger")).to_have_count(0)
    rollout = Rollout.objects.get(category__slug="vsa")
    assert (rollout.image.name, rollout.batch_size, rollout.pause_seconds) == ("vsa-2.0", 1, 0)

    member = as_user("alice")
    member.goto("/portal/keys/")
    member.click("#access-key-form button[type=submit]")
    expect(member.locator(".alert-danger")).to_have_count(0)
    assert Ec2Credential.objects.filter(user=demo.alice).count() == 1


def test_launch_and_adoption_preview_as_shown(as_user, demo):
    member = as_user("alice")
    member.goto("/launch/?category=vsa")
    member.fill("#id_name", "store-1")
    member.click("#launch-form button[type=submit]")
    member.wait_for_url("**/portal/**")
    instance = Instance.objects.get(name="store-1")
    vsa = demo.categories["vsa"]
    assert (instance.category, instance.flavor, instance.image.name) == (vsa, vsa.default_flavor, "vsa-appliance")

    page = as_user("admin")
    page.goto("/console/adoption/")
    page.click("#adoption-preview button[type=submit]")
    expect(page.locator("#adoption-plan")).to_be_visible()
    expect(page.locator(".alert-danger")).to_have_count(0)
