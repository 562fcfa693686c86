"""A member's appliance as a real container, its GUI on its own origin through the
dashboard's proxy, and VMs and containers side by side in one project."""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path

import docker
import pytest

from categories.models import Image, InstanceCategory
from instances.drivers.registry import reset
from instances.models import Instance

pytestmark = pytest.mark.docker
ROOT = Path(__file__).resolve().parent.parent
APPLIANCE = "adminvms/appliance-gui:test"


@pytest.fixture(scope="module")
def engine():
    subprocess.run(["bash", str(ROOT / "scripts" / "ensure-docker.sh")], check=True, capture_output=True, timeout=600)
    return docker.from_env()


@pytest.fixture
def nas(demo, settings, engine):
    """A vsa-like appliance category whose instances are containers on the docker backend."""
    settings.ADMINVMS = {**settings.ADMINVMS, "BACKENDS": ["sim", "docker"]}
    reset()
    category = InstanceCategory.objects.create(
        slug="nas", name="NAS appliance", kind="container", management="appliance", user_visible=True,
        user_operations=["launch", "reboot", "terminate", "appliance_gui"], network_placement="both",
        backend="docker", gui_port=8080, gui_path="/", default_flavor=demo.flavors["m1.tiny"],
    )  # fmt: skip
    image = Image.objects.create(name="nas-appliance", kind="container", backend_id=APPLIANCE)
    image.categories.set([category])
    category.default_image = image
    category.save()
    yield category
    for instance in Instance.objects.filter(backend="docker").exclude(backend_id=""):
        with contextlib.suppress(docker.errors.NotFound):
            engine.containers.get(instance.backend_id).remove(force=True)
    reset()


def _body(response) -> str:
    return b"".join(response.streaming_content).decode() if response.streaming else response.content.decode()


def test_member_opens_the_container_appliance_gui_on_its_own_origin(demo, nas, api, run_tasks, engine, web, gui_client):
    with run_tasks():
        launched = api(demo.alice).post("/api/v1/instances/", {"name": "nas-1", "category": "nas"}, format="json")
    assert launched.status_code == 202, launched.content
    instance = Instance.objects.get(pk=launched.json()["id"])
    assert instance.status == "ACTIVE", instance.fault
    assert instance.management_endpoint.startswith("127.0.0.1:")
    assert set(instance.addresses) == {"project", "management"}

    alice_dashboard = web(demo.alice)
    # The member's own pages never show where it is.
    detail = alice_dashboard.get(f"/portal/appliances/{instance.pk}/").content.decode()
    assert instance.management_endpoint not in detail and instance.addresses["management"][0] not in detail

    # "Open appliance GUI" hands over to the appliance's own origin; the GUI is at its root.
    alice = gui_client(demo.alice, instance)
    assert alice.gui_host == f"{instance.pk}.gui.localhost"
    page = alice.get("/")
    assert page.status_code == 200
    assert "adminvms appliance GUI" in _body(page)
    assert "adminvms appliance sub page" in _body(alice.get("/sub/page.html"))
    # The dashboard's own origin proxies nothing any more.
    assert alice_dashboard.get(f"/portal/appliances/{instance.pk}/gui/index.html").status_code == 404

    # Another project's member, and a reader, get no ticket.
    assert web(demo.bob).post(f"/portal/appliances/{instance.pk}/gui/").status_code == 404
    assert web(demo.rita).post(f"/portal/appliances/{instance.pk}/gui/").status_code == 403

    # Redirects inside the appliance stay paths on its origin; the others are refused.
    inside = alice.get("/cgi-bin/redirect-in")
    assert inside.status_code == 302 and inside["Location"] == "/sub/page.html"
    outside = alice.get("/cgi-bin/redirect-out")
    assert outside.status_code == 502 and "169.254" not in _body(outside)

    # The appliance never sees a cookie or credentials (neither the GUI host's nor any other).
    seen = _body(gui_client(demo.alice, instance, HTTP_AUTHORIZATION="Basic c2VjcmV0").get("/cgi-bin/headers"))
    assert "HTTP_COOKIE" not in seen and "adminvms_gui" not in seen and "c2VjcmV0" not in seen
    assert f"HTTP_HOST={instance.management_endpoint}" in seen
    assert f"HTTP_X_FORWARDED_HOST={instance.pk}.gui.localhost" in seen

    # Nothing else is reachable: dot segments, absolute URLs and Host tricks.
    assert alice.get("/../../../etc/passwd").status_code == 400
    assert alice.get("/%2e%2e/admin/").status_code == 400
    assert alice.get("/http://169.254.169.254/latest/").status_code == 404  # the appliance's own 404
    assert alice.get("/", HTTP_HOST="169.254.169.254").status_code == 400

    # A stopped appliance's GUI is refused at once, with the session still there.
    Instance.objects.filter(pk=instance.pk).update(status="STOPPED")
    assert alice.get("/").status_code == 409
    Instance.objects.filter(pk=instance.pk).update(status="ACTIVE")

    with run_tasks():
        assert api(demo.alice).delete(f"/api/v1/instances/{instance.pk}/").status_code == 202
    instance.refresh_from_db()
    assert instance.status == "DELETED"
    with pytest.raises(docker.errors.NotFound):
        engine.containers.get(instance.backend_id)


def test_a_project_holds_a_sim_vm_and_a_docker_container(demo, nas, api, run_tasks, web):
    client = api(demo.alice)
    with run_tasks():
        vm = client.post("/api/v1/instances/", {"name": "vm-1"}, format="json").json()
        box = client.post("/api/v1/instances/", {"name": "box-1", "category": "nas"}, format="json").json()
    assert Instance.objects.get(pk=vm["id"]).status == "ACTIVE"
    assert Instance.objects.get(pk=box["id"]).status == "ACTIVE"

    assert [i["name"] for i in client.get("/api/v1/instances/").json()["results"]] == ["vm-1"]
    assert [i["name"] for i in client.get("/api/v1/instances/?category=nas").json()["results"]] == ["box-1"]
    admin = api(demo.admin)
    both = admin.get("/api/v1/instances/?category=all&project=acme").json()["results"]
    assert {(i["name"], i["backend"]) for i in both} == {("vm-1", "sim"), ("box-1", "docker")}
    only_docker = admin.get("/api/v1/instances/?category=all&backend=docker").json()["results"]
    assert [i["name"] for i in only_docker] == ["box-1"]
    console = web(demo.admin).get("/console/instances/?category=all&project=acme").content.decode()
    assert "vm-1" in console and "box-1" in console and "sim · simulated" in console
