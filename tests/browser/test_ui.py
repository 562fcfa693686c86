"""What an operator, a member and a reader see and do, clicking in a real browser."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from categories.models import Image
from instances import services
from instances.models import Instance

from .conftest import screenshot

pytestmark = [pytest.mark.browser, pytest.mark.worker]
SETTLE = 30_000  # ms


def _row(page, instance_id):
    return page.locator(f"#instance-{instance_id}")


def test_admin_creates_a_category_and_watches_an_instance_turn_active(login, demo):
    Image.objects.create(name="vpn-gateway", kind="vm", backend_id="vpn-gateway")  # as synced from the cloud
    page = login("admin")

    page.click("text=Categories")
    page.click("text=New category")
    page.fill("#id_slug", "vpn")
    page.fill("#id_name", "VPN gateway")
    page.select_option("#id_management", "provider")
    page.select_option("#id_network_placement", "both")
    page.select_option("#id_default_flavor", label="m1.small")
    page.select_option("#id_default_image", label="vpn-gateway")
    page.fill("#id_max_instances", "2")
    page.click("#category-form button[type=submit]")
    expect(page.locator("#categories tr[data-slug=vpn]")).to_contain_text("VPN gateway")

    page.click("text=Instances")
    page.click("text=Launch instance")
    page.select_option("#id_category", "vpn")
    expect(page.locator("#category-help")).to_contain_text("Provider-managed")  # htmx re-rendered the form
    page.fill("#id_name", "vpn-1")
    page.select_option("#id_project", "acme")
    page.click("#launch-form button[type=submit]")
    page.wait_for_url("**/console/instances/*/")

    instance = Instance.objects.get(name="vpn-1")
    row = _row(page, instance.pk)
    expect(row).to_have_attribute("data-status", "BUILDING")
    page.evaluate("window.__noReload = true")
    expect(row).to_have_attribute("data-status", "ACTIVE", timeout=SETTLE)
    assert page.evaluate("window.__noReload") is True  # it turned ACTIVE on screen, without a reload
    expect(page.locator("#timeline")).to_contain_text("finished")

    page.goto("/console/instances/?category=all")
    expect(_row(page, instance.pk)).to_have_attribute("data-status", "ACTIVE")
    screenshot(page, "console-instances")
    page.goto("/console/")
    expect(page.locator("#by-category")).to_contain_text("VPN gateway")
    screenshot(page, "console-overview")


def test_member_launches_an_appliance_reboots_it_and_sees_no_other_lb(login, demo):
    lb_acme, _lb_globex = (
        services.instance_launch(user=demo.admin, name=f"lb-{p.slug}", project=p, category=demo.categories["lb"])[0]
        for p in (demo.acme, demo.globex)
    )
    page = login("alice")

    page.click("text=Appliances")
    expect(page.locator("#category-lb")).to_contain_text("lb-acme")  # visible read-only
    expect(page.locator(f"#instance-{lb_acme.pk} [data-op]")).to_have_count(0)
    expect(page.locator("body")).not_to_contain_text("lb-globex")  # never another project's
    page.click("text=Request virtual storage array")
    page.fill("#id_name", "store-1")
    page.click("#launch-form button[type=submit]")
    page.wait_for_url("**/portal/appliances/*/")

    instance = Instance.objects.get(name="store-1")
    assert page.url.endswith(f"/portal/appliances/{instance.pk}/")
    row = _row(page, instance.pk)
    expect(row).to_have_attribute("data-status", "ACTIVE", timeout=SETTLE)
    page.reload()
    expect(page.locator("#open-gui")).to_be_visible()
    expect(row.locator("[data-op=stop]")).to_have_count(0)  # vsa does not let members stop

    row.locator("[data-op=reboot]").click()
    expect(row).to_have_attribute("data-status", "REBOOTING")
    expect(row).to_have_attribute("data-status", "ACTIVE", timeout=SETTLE)
    expect(page.locator("#timeline")).to_contain_text("reboot by alice")  # the timeline follows without a reload
    instance.refresh_from_db()
    html = page.content()
    for secret in (instance.management_endpoint, instance.addresses["management"][0], instance.backend_id):
        assert secret not in html
    screenshot(page, "appliance")

    page.goto("/portal/")
    expect(page.locator("body")).not_to_contain_text("lb-acme")  # the portal lists standard instances only


def test_reader_sees_everything_read_only(login, demo):
    [store] = services.instance_launch(user=demo.alice, name="store-r", category=demo.categories["vsa"])
    page = login("rita")
    page.click("text=Appliances")
    row = _row(page, store.pk)
    expect(row).to_be_visible()
    expect(row).to_have_attribute("data-status", "ACTIVE", timeout=SETTLE)
    expect(page.locator("[data-op]")).to_have_count(0)
    expect(page.locator("text=Request virtual storage array")).to_have_count(0)
    page.click("text=Instances")
    expect(page.locator(".launch-button")).to_have_count(0)
