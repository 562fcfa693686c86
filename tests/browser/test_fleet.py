"""The fleet in a real browser: an admin resumes auto-heal from the banner and rolls a category out
to a new image, watching the rollout's row reach "succeeded" without a reload."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import expect

from instances import services
from instances.choices import RolloutStatus, Status
from instances.models import HealBreaker, Instance, Rollout
from tests.conftest import wait_until
from tests.factories import ImageFactory

from .conftest import screenshot

pytestmark = [pytest.mark.browser, pytest.mark.worker]
SETTLE = 60  # s


def test_admin_resumes_auto_heal_and_rolls_a_category_out_to_a_new_image(login, stack, demo):
    _, worker = stack
    vsa = demo.categories["vsa"]
    made = services.instance_launch(user=demo.admin, name="store", project=demo.acme, category=vsa, count=2)
    ids = [i.pk for i in made]
    wait_until(
        lambda: Instance.objects.filter(pk__in=ids, status=Status.ACTIVE, task_state="").count() == 2,
        SETTLE, "the vsas turn ACTIVE", worker,
    )  # fmt: skip
    new = ImageFactory(name="vsa-appliance-2", kind=vsa.kind, tags=[vsa.image_tag])
    breaker = HealBreaker.objects.create(
        scope="category", key="vsa", unhealthy=2, total=2,
        reason="2 of 2 auto-healed instances of category vsa turned unhealthy within 300 s.",
    )  # fmt: skip
    page = login("admin")

    banner = page.locator("#breaker-banner")
    expect(banner).to_contain_text("2 of 2 auto-healed instances of category vsa")
    page.once("dialog", lambda dialog: dialog.accept())
    banner.get_by_role("button", name="Resume auto-heal").click()
    expect(page.locator(".alert-success")).to_contain_text("Auto-heal resumed for category 'vsa'")
    expect(page.locator("#breaker-banner")).to_have_count(0)
    assert not HealBreaker.objects.get(pk=breaker.pk).is_open

    page.get_by_role("link", name="Rollouts", exact=True).click()
    page.select_option("#id_category", "vsa")
    page.select_option("#id_image", "")  # the newest image tagged for the category
    page.fill("#id_batch_size", "1")
    page.fill("#id_pause_seconds", "0")
    page.click("#rollout-form button[type=submit]")
    rollout = Rollout.objects.get()
    assert (rollout.image, rollout.total) == (new, 2)
    row = page.locator(f"#rollout-{rollout.pk}")
    expect(row).to_have_attribute("data-status", "running")
    page.evaluate("window.__noReload = true")

    # The worker's fleet pass (Celery beat's, here this test's) starts each batch; the worker replaces.
    deadline = time.monotonic() + SETTLE
    while time.monotonic() < deadline:
        services.fleet_run()
        rollout.refresh_from_db()
        if rollout.status != RolloutStatus.RUNNING:
            break
        time.sleep(0.3)
    assert rollout.status == RolloutStatus.SUCCEEDED, (rollout.status, rollout.message, worker.tail())

    expect(row).to_have_attribute("data-status", "succeeded", timeout=10_000)
    expect(row.locator(".counts")).to_contain_text("2 succeeded · 0 failed · 0 running · of 2")
    assert page.evaluate("window.__noReload") is True  # the row settled on screen, without a reload
    screenshot(page, "console-rollouts")
    assert set(Instance.objects.filter(pk__in=ids).values_list("image", "generation")) == {(new.pk, 1)}
