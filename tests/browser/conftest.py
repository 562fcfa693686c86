"""Playwright driving Debian's Chromium against the live server, with a real worker."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from conftest import DEMO_PASSWORD

CHROMIUM = os.environ.get("ADMINVMS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-gpu",
    "--no-first-run",
]
ROOT = Path(__file__).resolve().parents[2]
# The README's screenshots are refreshed on demand (ADMINVMS_UPDATE_SCREENSHOTS=1);
# otherwise a run leaves its screenshots in test-artifacts/ and the checkout clean.
SCREENSHOTS = ROOT / (
    "docs/screenshots" if os.environ.get("ADMINVMS_UPDATE_SCREENSHOTS") else "test-artifacts/screenshots"
)
WORKER_ENV = {
    "ADMINVMS_SIM_BOOT_SECONDS": "1.5",
    "ADMINVMS_SIM_REBOOT_SECONDS": "1.5",
    "ADMINVMS_SIM_STOP_SECONDS": "1",
    "ADMINVMS_SIM_DELETE_SECONDS": "1",
    "ADMINVMS_POLL_INTERVAL": "0.3",
}


@pytest.fixture
def browser(monkeypatch):
    # Playwright's sync API keeps an event loop in this thread; the ORM calls the
    # tests make between browser steps are still plain synchronous code.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def stack(demo, live_server, workers):
    """The live server and a real Celery worker on Redis, both on the test database."""
    worker = workers(**WORKER_ENV)
    return live_server.url, worker


def sign_in(browser, base_url: str, username: str):
    """A new page (in a browser context of its own) signed in to the dashboard as ``username``."""
    page = browser.new_page(viewport={"width": 1400, "height": 900}, base_url=base_url)
    page.goto("/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", DEMO_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state()
    assert "/accounts/login/" not in page.url, f"{username} could not sign in"
    return page


@pytest.fixture
def login(browser, stack):
    base_url, _ = stack
    return lambda username: sign_in(browser, base_url, username)


def screenshot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
