"""A hostile appliance page, served by a real appliance container and opened by a member in
Chromium, cannot reach the dashboard: its GUI runs on an origin of its own (DESIGN.md rule 9)."""

from __future__ import annotations

import contextlib
import json
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import docker
import pytest
from playwright.sync_api import expect

from categories.models import Image, InstanceCategory
from instances import services
from instances.drivers.registry import reset
from instances.models import Instance

from .conftest import screenshot, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.docker]
ROOT = Path(__file__).resolve().parents[2]
HOSTILE = "adminvms/appliance-hostile:test"


@pytest.fixture
def hostile_appliance(demo, settings, live_server):
    """An ACTIVE appliance of acme: a container of the hostile image, on the docker backend.

    Launched in this process before the browser starts; without a worker, the launch's
    task runs eagerly when its transaction commits.
    """
    subprocess.run(["bash", str(ROOT / "scripts" / "ensure-docker.sh")], check=True, capture_output=True, timeout=600)
    engine = docker.from_env()
    settings.ADMINVMS = {**settings.ADMINVMS, "BACKENDS": ["sim", "docker"]}
    reset()
    category = InstanceCategory.objects.create(
        slug="evil", name="Hostile appliance", kind="container", management="appliance", user_visible=True,
        user_operations=["launch", "appliance_gui"], network_placement="management", backend="docker",
        gui_port=8080, gui_path="/hostile.html", default_flavor=demo.flavors["m1.tiny"],
    )  # fmt: skip
    image = Image.objects.create(name="hostile-appliance", kind="container", backend_id=HOSTILE)
    image.categories.set([category])
    category.default_image = image
    category.save()
    (instance,) = services.instance_launch(user=demo.alice, name="evil-1", project=demo.acme, category=category)
    instance.refresh_from_db()
    assert instance.status == "ACTIVE", instance.fault
    yield instance
    with contextlib.suppress(docker.errors.NotFound):
        engine.containers.get(instance.backend_id).remove(force=True)
    reset()


def test_a_hostile_appliance_page_cannot_reach_the_dashboard(browser, live_server, demo, hostile_appliance):
    dashboard = live_server.url  # http://localhost:<port>
    port = urlsplit(dashboard).port
    gui_origin = f"http://{hostile_appliance.pk}.gui.localhost:{port}"
    page = sign_in(browser, dashboard, "alice")
    page.goto(f"/portal/appliances/{hostile_appliance.pk}/")
    names = {c["name"] for c in page.context.cookies(dashboard)}
    assert {"sessionid", "csrftoken"} <= names  # there is something to steal

    with page.context.expect_page() as opened:
        page.click("#open-gui")
    gui = opened.value
    gui.wait_for_url(f"{gui_origin}/hostile.html")
    expect(gui.locator("body[data-done='1']")).to_be_attached(timeout=15_000)
    report = json.loads(gui.locator("#report").text_content())
    tries = {t["what"]: t for t in report["tries"]}

    # The page runs on the appliance's own origin, with no cookie it can read, and no opener.
    assert report["origin"] == gui_origin
    assert report["cookie"] == ""
    assert report["opener"] == "null"
    for base in (dashboard, f"http://127.0.0.1:{port}"):
        # The API answers it nothing readable (cross-origin, no CORS), so nothing as alice.
        me = tries[f"GET {base}/api/v1/me/"]
        assert "blocked" in me and "alice" not in json.dumps(me), me
        # A request it may send blind carries no session the API accepts: nothing launched.
        post = tries[f"POST {base}/api/v1/instances/"]
        assert "alice" not in json.dumps(post), post
        # The dashboard refuses to be framed, and a frame of another origin is not readable anyway.
        assert "blocked" in tries[f"frame {base}/portal/"], tries[f"frame {base}/portal/"]
    # On its own origin, /api/v1/me/ is a path of the appliance (its 404), not the dashboard's API.
    own = tries["GET /api/v1/me/ on this origin"]
    assert own["got"].startswith("404") and "alice" not in own["got"]
    assert not Instance.objects.filter(name="pwned-by-appliance").exists()

    # The GUI host holds one cookie, ours, out of the page's reach; the dashboard's stay home.
    gui_cookies = gui.context.cookies(gui_origin)
    assert [(c["name"], c["httpOnly"], c["sameSite"]) for c in gui_cookies] == [("adminvms_gui", True, "Strict")]
    assert all(c["domain"] == "localhost" for c in gui.context.cookies(dashboard))

    # The GUI itself works for the member: its start page, and its other pages.
    screenshot(gui, "appliance-gui-origin")
    gui.goto(f"{gui_origin}/")
    expect(gui.locator("h1")).to_have_text("adminvms appliance GUI")
    # And the dashboard is as it was: alice still signed in, her session untouched.
    page.reload()
    expect(page.locator("#open-gui")).to_be_visible()
