"""The launch form's image choices follow the category in a real browser, without a reload (issue 12)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from categories.models import Image
from instances.models import Instance

pytestmark = [pytest.mark.browser, pytest.mark.worker]
SETTLE = 30_000  # ms
STANDARD = ["(default: debian-12)", "acme-golden", "debian-12", "fail-boot"]
VSA = ["(default: vsa-appliance)", "vsa-appliance"]


def _htmx_ready(page, selector: str) -> None:
    """Wait until htmx has processed the element ``selector`` finds (a form it swapped in): a change made
    before that reaches no handler and re-renders nothing (a flake seen under load)."""
    page.wait_for_function(
        "s => { const e = document.querySelector(s); return !!(e && e['htmx-internal-data']"
        " && e['htmx-internal-data'].initHash); }",
        arg=selector,
    )


def test_image_choices_follow_the_category_without_a_reload(login, demo):
    Image.objects.create(name="acme-golden", kind="vm", backend_id="acme-golden", project=demo.acme)
    Image.objects.create(name="globex-golden", kind="vm", backend_id="globex-golden", project=demo.globex)
    page = login("alice")
    page.goto("/launch/")
    images = page.locator("#id_image option")
    expect(page.locator("#id_category")).to_have_value("standard")
    expect(images).to_have_text(STANDARD)  # acme's own image, never globex's
    page.fill("#id_name", "golden-1")
    page.evaluate("window.__noReload = true")

    with page.expect_request("**/launch/?*") as asked:
        page.select_option("#id_category", "vsa")
    assert "csrfmiddlewaretoken" not in asked.value.url
    expect(images).to_have_text(VSA)  # the appliance boots the provider's vsa images alone
    expect(page.locator("#category-help")).to_contain_text("Appliance")
    _htmx_ready(page, "#id_category")
    page.select_option("#id_category", "standard")
    expect(images).to_have_text(STANDARD)
    expect(page.locator("#id_name")).to_have_value("golden-1")  # what was typed stays
    assert page.evaluate("window.__noReload") is True

    page.select_option("#id_image", label="acme-golden")
    page.click("#launch-form button[type=submit]")
    page.wait_for_url("**/portal/instances/*/")
    instance = Instance.objects.get(name="golden-1")
    assert instance.image.name == "acme-golden"
    expect(page.locator(f"#instance-{instance.pk}")).to_have_attribute("data-status", "ACTIVE", timeout=SETTLE)
