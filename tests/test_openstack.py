"""The openstack backend against the real control plane of tests/openstack/ (make openstack-up):
Keystone, Placement, Glance, Nova with its fake virt driver and Neutron, on 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import openstack
import pytest

from categories.models import Image, InstanceCategory
from instances import services
from instances.drivers.registry import get_driver, reset
from instances.models import Instance

from .conftest import wait_until

pytestmark = [pytest.mark.openstack, pytest.mark.worker]
ROOT = Path(__file__).resolve().parent.parent
CLOUDS = ROOT / ".openstack" / "clouds.yaml"
LOGS = ROOT / ".openstack" / "logs"
SETTLE = 90
API_PORTS = {"keystone": 5000, "nova-api": 8774}  # tests/openstack/common.sh


@pytest.fixture(scope="session")
def clouds_file():
    if not CLOUDS.exists():
        pytest.fail(f"No control plane: run `make openstack-up` (logs in {LOGS})")
    os.environ["OS_CLIENT_CONFIG_FILE"] = str(CLOUDS)
    return str(CLOUDS)


def _cloud(name: str):
    return openstack.connect(cloud=name, compute_api_version="2.73")


@pytest.fixture(scope="session")
def nova_admin(clouds_file):
    return _cloud("adminvms-test")


@pytest.fixture
def on_openstack(demo, settings, clouds_file):
    """The demo's VM categories on the openstack backend, booting Glance's images as seed_demo sets them up
    there: mirrored by sync_catalog and offered to each category by their adminvms:category tags."""
    settings.ADMINVMS = {
        **settings.ADMINVMS,
        "BACKENDS": ["sim", "openstack"],
        "OPENSTACK": {**settings.ADMINVMS["OPENSTACK"], "CLOUD": "adminvms-test", "LOCK_CLOUD": "adminvms-test-lock"},
    }
    reset()
    for slug in ("standard", "lb", "vsa"):
        InstanceCategory.objects.filter(slug=slug).update(backend="openstack", default_image=None)
        demo.categories[slug].refresh_from_db()
    Image.objects.filter(kind="vm").update(is_active=False)  # the simulated cloud's images
    services.catalog_sync(backend="openstack")
    yield demo
    reset()


@pytest.fixture
def os_worker(workers, clouds_file):
    def start(**env):
        return workers(
            ADMINVMS_BACKENDS="sim,openstack",
            OS_CLIENT_CONFIG_FILE=clouds_file,
            OS_CLOUD="adminvms-test",
            ADMINVMS_OS_LOCK_CLOUD="adminvms-test-lock",
            ADMINVMS_POLL_INTERVAL="0.5",
            ADMINVMS_ACTION_TIMEOUT="120",
            **env,
        )

    return start


def _servers(nova_admin, instance_id):
    return list(nova_admin.compute.servers(all_projects=True, tags=f"adminvms-instance:{instance_id}"))


def _settled(client, instance_id, status):
    def check():
        body = client.get(f"/api/v1/instances/{instance_id}/").json()
        return body if body["status"] == status and not body["task_state"] else None

    return check


def _answers(port: int) -> bool:
    """Whether an API answers HTTP on 127.0.0.1:port (any status, 401 included)."""
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5)
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False
    return True


def _control_plane(script: str, *names: str) -> None:
    subprocess.run(
        ["bash", str(ROOT / "tests/openstack" / script), *names], check=True, capture_output=True, timeout=300
    )


def _launch(client, **body):
    response = client.post("/api/v1/instances/", body, format="json")
    assert response.status_code == 202, response.content
    return response.json()["id"]


def test_lifecycle_on_nova_through_the_api(on_openstack, api, os_worker, nova_admin):
    worker = os_worker()
    client = api(on_openstack.alice)
    iid = _launch(client, name="os-web")
    body = wait_until(_settled(client, iid, "ACTIVE"), SETTLE, "launch on Nova", worker)
    [server] = _servers(nova_admin, iid)
    acme = nova_admin.identity.find_project("acme")
    assert server.project_id == acme.id  # a user category runs in the tenant's own project
    assert body["addresses"]["project"]

    for action, expected in (("reboot", "ACTIVE"), ("stop", "STOPPED"), ("start", "ACTIVE")):
        assert client.post(f"/api/v1/instances/{iid}/action/", {"action": action}, format="json").status_code == 202
        wait_until(_settled(client, iid, expected), SETTLE, f"{action} on Nova", worker)
        assert nova_admin.compute.get_server(server.id).status == ("SHUTOFF" if expected == "STOPPED" else "ACTIVE")

    assert client.delete(f"/api/v1/instances/{iid}/").status_code == 202
    wait_until(_settled(client, iid, "DELETED"), SETTLE, "terminate on Nova", worker)
    assert _servers(nova_admin, iid) == []


def test_appliance_lives_in_the_service_project_dual_homed_and_locked(on_openstack, api, os_worker, nova_admin):
    worker = os_worker()
    client = api(on_openstack.alice)
    iid = _launch(client, name="os-vsa", category="vsa")
    wait_until(_settled(client, iid, "ACTIVE"), SETTLE, "vsa on Nova", worker)
    instance = Instance.objects.get(pk=iid)
    assert instance.addresses["project"] and instance.addresses["management"]
    assert instance.management_endpoint == f"{instance.addresses['management'][0]}:8080"

    [server] = _servers(nova_admin, iid)
    assert server.project_id == nova_admin.current_project_id  # the provider's service project
    assert server.is_locked and "adminvms" in server.locked_reason
    assert {"adminvms", f"adminvms-instance:{iid}"} <= set(server.tags)
    networks = {
        nova_admin.network.get_network(p.network_id).name for p in nova_admin.network.ports(device_id=server.id)
    }
    assert networks == {"acme-net", "management"}

    # Nobody bypasses the dashboard: a non-admin of the service project meets the lock, and cannot lift it
    # (the lock was made by an admin scoped elsewhere, so Nova records it as the admin's, not the owner's),
    member = _cloud("adminvms-member")
    assert member.compute.get_server(server.id).id == server.id  # the control: the member sees the server
    with pytest.raises(openstack.exceptions.ForbiddenException):
        member.compute.unlock_server(server.id)
    for attempt in (
        lambda: member.compute.reboot_server(server.id, "SOFT"),
        lambda: member.compute.stop_server(server.id),
        lambda: member.compute.delete_server(server.id),
    ):
        with pytest.raises(openstack.exceptions.ConflictException):
            attempt()
    assert nova_admin.compute.get_server(server.id).is_locked
    # and the tenant's own Keystone user does not even see it.
    with pytest.raises(openstack.exceptions.NotFoundException):
        _cloud("adminvms-acme").compute.get_server(server.id)

    # The member's view stays restricted.
    body = client.get(f"/api/v1/instances/{iid}/").json()
    assert "management" not in body["addresses"] and "backend_id" not in body
    # adminvms itself still acts on it.
    assert client.post(f"/api/v1/instances/{iid}/action/", {"action": "reboot"}, format="json").status_code == 202
    wait_until(_settled(client, iid, "ACTIVE"), SETTLE, "vsa rebooted through adminvms", worker)
    assert client.delete(f"/api/v1/instances/{iid}/").status_code == 202
    wait_until(_settled(client, iid, "DELETED"), SETTLE, "vsa terminated", worker)
    assert _servers(nova_admin, iid) == []
    assert list(nova_admin.network.ports(tags=f"adminvms-instance:{iid}")) == []


def test_worker_killed_right_after_the_create_call_makes_one_server(on_openstack, api, os_worker, nova_admin):
    first = os_worker(ADMINVMS_FAULT_PAUSE_AFTER_CREATE="8")
    client = api(on_openstack.alice)
    iid = _launch(client, name="os-once", category="vsa")
    wait_until(lambda: _servers(nova_admin, iid), SETTLE, "server created in Nova", first)
    first.kill()
    assert Instance.objects.get(pk=iid).backend_id == ""  # the dead worker never recorded it

    second = os_worker()
    wait_until(_settled(client, iid, "ACTIVE"), SETTLE, "redelivered launch", second)
    servers = _servers(nova_admin, iid)
    assert len(servers) == 1
    assert Instance.objects.get(pk=iid).backend_id == servers[0].id
    client.delete(f"/api/v1/instances/{iid}/")
    wait_until(_settled(client, iid, "DELETED"), SETTLE, "cleanup", second)


@pytest.fixture
def lb_of_this_run(on_openstack, nova_admin):
    """The lb category under a slug of this run's own: its server group (named after project and
    category) is not shared with another run on the same control plane, nor with a failed one's leftovers."""
    lb = on_openstack.categories["lb"]
    lb.slug = f"lb-{uuid.uuid4().hex[:8]}"
    lb.save()
    group_name = f"adminvms-acme-{lb.slug}"
    yield lb.slug, group_name
    for group in nova_admin.compute.server_groups():
        if group.name == group_name:
            nova_admin.compute.delete_server_group(group, ignore_missing=True)


def test_hard_anti_affinity_spreads_replicas_and_refuses_a_third(
    on_openstack, lb_of_this_run, api, os_worker, nova_admin
):
    slug, group_name = lb_of_this_run
    worker = os_worker()
    admin = api(on_openstack.admin)
    ids = [_launch(admin, name=f"os-lb-{n}", category=slug, project="acme") for n in range(3)]
    final = {}
    for iid in ids:
        final[iid] = wait_until(
            lambda iid=iid: (
                (b := admin.get(f"/api/v1/instances/{iid}/").json())["status"] in ("ACTIVE", "ERROR")
                and not b["task_state"]
                and b
            ),
            SETTLE,
            "lb replicas settle",
            worker,
        )
    active = [b for b in final.values() if b["status"] == "ACTIVE"]
    errors = [b for b in final.values() if b["status"] == "ERROR"]
    assert len(active) == 2 and len(errors) == 1
    assert {b["host"] for b in active} == {"compute1", "compute2"}
    assert "No valid host" in errors[0]["fault"]
    [group] = [g for g in nova_admin.compute.server_groups() if g.name == group_name]
    assert {b["backend_id"] for b in active} <= set(group.member_ids)  # this run's own group placed them
    for iid in ids:
        admin.delete(f"/api/v1/instances/{iid}/")
    for iid in ids:
        wait_until(_settled(admin, iid, "DELETED"), SETTLE, "lb cleanup", worker)


def test_reconcile_finds_vanished_servers_and_orphans_in_one_listing(on_openstack, api, os_worker, nova_admin):
    worker = os_worker()
    client = api(on_openstack.alice)
    ids = [_launch(client, name=f"os-rec-{n}") for n in range(3)]
    for iid in ids:
        wait_until(_settled(client, iid, "ACTIVE"), SETTLE, "launch", worker)
    gone = _servers(nova_admin, ids[0])[0]
    nova_admin.compute.delete_server(gone.id)
    nova_admin.compute.wait_for_delete(gone, wait=60)
    stray_id = str(uuid.uuid4())
    image = nova_admin.image.find_image("debian-12")
    stray = nova_admin.compute.create_server(
        name="stray", image_id=image.id, flavor_id=nova_admin.compute.find_flavor("m1.tiny").id,
        networks=[{"uuid": nova_admin.network.find_network("management").id}],
        tags=["adminvms", f"adminvms-instance:{stray_id}"],
    )  # fmt: skip

    driver = get_driver("openstack")
    calls = []
    session = driver.conn.compute
    original = session.request

    def counted(url, method, *args, **kwargs):
        calls.append((method, url))
        return original(url, method, *args, **kwargs)

    session.request = counted
    try:
        [run] = services.instances_reconcile(backends=["openstack"])
    finally:
        session.request = original
    assert run.error == ""
    assert run.vanished == [ids[0]]
    assert stray_id in {o["instance_id"] for o in run.orphans}
    assert Instance.objects.get(pk=ids[0]).status == "ERROR"
    assert len(calls) == 1, calls  # one paginated listing, whatever the number of instances
    nova_admin.compute.delete_server(stray.id)
    for iid in ids[1:]:
        client.delete(f"/api/v1/instances/{iid}/")
    for iid in ids[1:]:  # before the worker stops, or the servers outlive the test
        wait_until(_settled(client, iid, "DELETED"), SETTLE, "reconcile cleanup", worker)


@pytest.mark.parametrize("service", ["nova-api", "keystone"])
def test_a_service_down_mid_launch_ends_in_error_after_bounded_retries(on_openstack, api, os_worker, service):
    """The worker's first call needs Keystone (a token) and then Nova: either one gone gives a clear ERROR,
    and the same launch through the same worker succeeds once the service is back."""
    port = API_PORTS[service]
    worker = os_worker(ADMINVMS_TASK_MAX_RETRIES="2")
    client = api(on_openstack.alice)
    assert _answers(port), f"{service} does not answer before the test stops it"
    _control_plane("down.sh", service)
    try:
        assert not _answers(port), f"{service} still answers after down.sh"
        iid = _launch(client, name=f"os-no-{service}")
        wait_until(_settled(client, iid, "ERROR"), SETTLE, f"ERROR while {service} is down", worker)
        instance = Instance.objects.get(pk=iid)
        assert "did not answer after 3 tries" in instance.fault
        assert f"127.0.0.1:{port}/" in instance.fault  # the stopped service, not some other failure
        assert instance.task_state == ""
    finally:
        _control_plane("up.sh")
    # The control: the same request through the same worker, with the service up.
    again = _launch(client, name=f"os-no-{service}")
    wait_until(_settled(client, again, "ACTIVE"), SETTLE, f"launch once {service} is back", worker)
    client.delete(f"/api/v1/instances/{again}/")
    wait_until(_settled(client, again, "DELETED"), SETTLE, "cleanup", worker)


def test_sync_catalog_mirrors_flavors_images_and_maps_projects(on_openstack, nova_admin):
    import io

    from django.core.management import call_command

    from categories.models import Flavor

    out = io.StringIO()
    call_command("sync_catalog", backend=["openstack"], stdout=out)
    assert "openstack:" in out.getvalue()
    assert Flavor.objects.get(name="m1.small").backend_id == nova_admin.compute.find_flavor("m1.small").id
    glance = nova_admin.image.find_image("vsa-appliance")
    image = Image.objects.get(backend_id=glance.id)
    assert image.backend_id == glance.id
    assert [c.slug for c in image.categories.all()] == ["vsa"]
    on_openstack.acme.refresh_from_db()
    assert on_openstack.acme.keystone_id == nova_admin.identity.find_project("acme").id


def test_container_categories_are_refused_without_zun(on_openstack, api, nova_admin):
    # The controls: the cloud's catalog answers, has Nova and no Zun, and the driver reads it (an
    # unreachable cloud would also end in "no Zun"); the same request is valid on a backend with containers.
    assert nova_admin.endpoint_for("compute") and nova_admin.endpoint_for("container") is None
    assert get_driver("openstack").conn.endpoint_for("compute")
    admin = api(on_openstack.admin)
    body = {"name": "c", "category": "cache", "project": "acme"}
    assert on_openstack.categories["cache"].backend != "openstack"
    assert admin.post("/api/v1/instances/", body, format="json").status_code == 202

    on_openstack.categories["cache"].backend = "openstack"
    on_openstack.categories["cache"].save()
    response = admin.post("/api/v1/instances/", body, format="json")
    assert response.status_code == 400
    assert response.json()["field"] == "category"
    assert "the cloud has no Zun (container) service" in response.json()["detail"]


def test_networks_are_found_in_their_own_projects_not_by_a_name_anyone_may_take(
    on_openstack, api, os_worker, nova_admin
):
    """The attacks: globex names a network `acme-net`, acme names one `management`. An acme appliance
    still joins acme's own network and the provider's management network."""
    acme, globex = (nova_admin.identity.find_project(name) for name in ("acme", "globex"))
    decoys = [
        _cloud("adminvms-globex").network.create_network(name="acme-net"),
        _cloud("adminvms-acme").network.create_network(name="management"),
    ]
    assert {n.project_id for n in decoys} == {globex.id, acme.id}
    try:
        worker = os_worker()
        client = api(on_openstack.alice)
        iid = _launch(client, name="os-decoys", category="vsa")
        wait_until(_settled(client, iid, "ACTIVE"), SETTLE, "vsa beside decoy networks", worker)
        [server] = _servers(nova_admin, iid)
        joined = {
            (net.name, net.project_id)
            for net in (
                nova_admin.network.get_network(p.network_id) for p in nova_admin.network.ports(device_id=server.id)
            )
        }
        assert joined == {("acme-net", acme.id), ("management", nova_admin.current_project_id)}
        instance = Instance.objects.get(pk=iid)
        assert instance.management_endpoint.split(":")[0] in instance.addresses["management"]
        client.delete(f"/api/v1/instances/{iid}/")
        wait_until(_settled(client, iid, "DELETED"), SETTLE, "cleanup", worker)
    finally:
        for network in decoys:
            nova_admin.network.delete_network(network, ignore_missing=True)


def test_terminating_a_tenants_server_deletes_only_its_own_ports(on_openstack, api, os_worker, nova_admin):
    """The attack: alice tags her own server (in her project, where she may) with an lb's instance tag,
    then terminates her instance through adminvms. The lb keeps its ports."""
    worker = os_worker()
    lb_id = _launch(api(on_openstack.admin), name="os-lb-victim", category="lb", project="acme")
    web_id = _launch(api(on_openstack.alice), name="os-tagger")
    for iid in (lb_id, web_id):
        wait_until(_settled(api(on_openstack.admin), iid, "ACTIVE"), SETTLE, "launch", worker)
    lb_ports = {p.id for p in nova_admin.network.ports(tags=f"adminvms-instance:{lb_id}")}
    assert len(lb_ports) == 2  # dual-homed
    alice = _cloud("adminvms-acme")
    [web] = _servers(nova_admin, web_id)
    alice.compute.get_server(web.id).add_tag(alice.compute, f"adminvms-instance:{lb_id}")
    assert f"adminvms-instance:{lb_id}" in nova_admin.compute.get_server(web.id).tags  # the attack took

    client = api(on_openstack.alice)
    assert client.delete(f"/api/v1/instances/{web_id}/").status_code == 202
    wait_until(_settled(client, web_id, "DELETED"), SETTLE, "tagger terminated", worker)
    assert {p.id for p in nova_admin.network.ports(tags=f"adminvms-instance:{lb_id}")} == lb_ports
    admin = api(on_openstack.admin)
    admin.delete(f"/api/v1/instances/{lb_id}/")
    wait_until(_settled(admin, lb_id, "DELETED"), SETTLE, "lb cleanup", worker)
    assert list(nova_admin.network.ports(tags=f"adminvms-instance:{lb_id}")) == []


def test_a_refused_create_leaves_no_ports_behind(on_openstack, api, os_worker, nova_admin):
    vsa = on_openstack.categories["vsa"]
    vsa.availability_zone = "no-such-zone"  # Nova refuses the create with 400
    vsa.save()
    worker = os_worker()
    client = api(on_openstack.admin)
    iid = _launch(client, name="os-refused", category="vsa", project="acme")
    wait_until(_settled(client, iid, "ERROR"), SETTLE, "refused create", worker)
    assert "availability zone" in Instance.objects.get(pk=iid).fault.lower()
    assert _servers(nova_admin, iid) == []
    assert list(nova_admin.network.ports(tags=f"adminvms-instance:{iid}")) == []


@pytest.fixture(params=["private", "community"])
def alices_image(request, nova_admin):
    """The attack's image: alice (project acme, her own Keystone credentials) uploads an image named like
    the provider's appliance image and tagged for the vsa category: private, or community (which any
    project may make its own images)."""
    image = _cloud("adminvms-acme").image.create_image(
        name="vsa-appliance", disk_format="raw", container_format="bare", visibility=request.param,
        data=b"\0" * 4096, tags=["adminvms:category=vsa"],
    )  # fmt: skip
    yield image
    nova_admin.image.delete_image(image, ignore_missing=True)


def test_a_tenants_image_serves_no_category_and_no_other_project(
    on_openstack, alices_image, api, os_worker, nova_admin
):
    [provider_vsa] = [i for i in nova_admin.image.images(name="vsa-appliance") if i.visibility == "public"]
    services.catalog_sync(backend="openstack")
    # Never the provider's, whatever its tags, name or visibility.
    assert not Image.objects.filter(backend_id=alices_image.id, project__isnull=True).exists()
    # The same name took nothing over: the provider's row is still the provider's, linked to vsa.
    provider_row = Image.objects.get(backend_id=provider_vsa.id)
    assert provider_row.project is None and [c.slug for c in provider_row.categories.all()] == ["vsa"]
    if alices_image.visibility == "community":
        # Glance lists no community image unless asked: it is not mirrored at all, and the vsa
        # default stays the provider's (the request is only accepted here; no worker runs it).
        default = _launch(api(on_openstack.alice), name="os-default", category="vsa")
        assert Instance.objects.get(pk=default).image == provider_row
        return
    mirrored = Image.objects.get(backend_id=alices_image.id)
    assert mirrored.project == on_openstack.acme and not mirrored.categories.exists() and mirrored.tags == []

    bob = api(on_openstack.bob)
    listed = {i["id"] for i in bob.get("/api/v1/images/?page_size=1000").json()["results"]}
    assert str(provider_row.pk) in listed and str(mirrored.pk) not in listed
    for client in (bob, api(on_openstack.alice)):  # another project's member; and alice, for a managed vsa
        response = client.post(
            "/api/v1/instances/", {"name": "x", "category": "vsa", "image": str(mirrored.pk)}, format="json"
        )
        assert response.status_code == 400, response.content
        assert "image" in response.json() or response.json()["field"] == "image"  # unknown to bob; refused alice
    assert not Instance.objects.exists()

    worker = os_worker()
    alice = api(on_openstack.alice)
    default = _launch(alice, name="os-default", category="vsa")  # no image: the provider's, by its link
    assert Instance.objects.get(pk=default).image == provider_row
    own = _launch(alice, name="os-own", image=str(mirrored.pk))  # her own image, in her own project
    wait_until(_settled(alice, own, "ACTIVE"), SETTLE, "alice's standard server from her own image", worker)
    [server] = _servers(nova_admin, own)
    assert server.image.id == alices_image.id
    _terminate_all(api(on_openstack.admin), worker)


def _terminate_all(admin, worker):
    """Terminate every instance of the test, each once its launch has settled (a terminate while
    an action runs is 409, rule 5), and wait until the servers are gone."""
    for iid in Instance.objects.exclude(status="DELETED").values_list("pk", flat=True):
        wait_until(lambda iid=iid: not Instance.objects.get(pk=iid).task_state, SETTLE, "settle", worker)
        assert admin.delete(f"/api/v1/instances/{iid}/").status_code == 202
        wait_until(_settled(admin, iid, "DELETED"), SETTLE, "cleanup", worker)


def test_a_tenants_server_metadata_never_names_a_gui_endpoint(on_openstack, api, os_worker, nova_admin):
    """The attack: alice's own server (a user category, in her project) gets metadata naming a GUI port;
    the dashboard must never record it as an endpoint its proxy would reach."""
    worker = os_worker()
    client = api(on_openstack.alice)
    iid = _launch(client, name="os-meta")
    wait_until(_settled(client, iid, "ACTIVE"), SETTLE, "launch", worker)
    [server] = _servers(nova_admin, iid)
    alice = _cloud("adminvms-acme")
    alice.compute.set_server_metadata(server, adminvms_gui_port="22")
    assert nova_admin.compute.get_server(server.id).metadata.get("adminvms_gui_port") == "22"  # the attack took
    [run] = services.instances_reconcile(backends=["openstack"])
    assert run.error == ""
    instance = Instance.objects.get(pk=iid)
    assert instance.management_endpoint == "" and "management" not in instance.addresses
    client.delete(f"/api/v1/instances/{iid}/")
    wait_until(_settled(client, iid, "DELETED"), SETTLE, "cleanup", worker)


def test_a_server_a_tenant_stamps_never_stands_in_for_the_providers(on_openstack, api, os_worker, nova_admin):
    """The attack: between alice's request for a vsa (its id is in the 202) and the worker's create, she
    makes a server of her own in acme stamped with that id. The worker must build the provider's own."""
    client = api(on_openstack.alice)
    iid = _launch(client, name="os-stamped", category="vsa")  # no worker yet: the task waits on the broker
    alice = _cloud("adminvms-acme")
    decoy = alice.compute.create_server(
        name="decoy", image_id=alice.image.find_image("debian-12").id,
        flavor_id=alice.compute.find_flavor("m1.small").id,
        networks=[{"uuid": alice.network.find_network("acme-net").id}],
        tags=["adminvms", f"adminvms-instance:{iid}"],
    )  # fmt: skip
    try:
        worker = os_worker()
        wait_until(_settled(client, iid, "ACTIVE"), SETTLE, "the vsa, beside a decoy", worker)
        instance = Instance.objects.get(pk=iid)
        assert instance.backend_id != decoy.id
        assert nova_admin.compute.get_server(instance.backend_id).project_id == nova_admin.current_project_id
        services.instances_reconcile(backends=["openstack"])
        instance.refresh_from_db()
        assert instance.backend_id != decoy.id and instance.status == "ACTIVE"
        client.delete(f"/api/v1/instances/{iid}/")
        wait_until(_settled(client, iid, "DELETED"), SETTLE, "cleanup", worker)
        assert nova_admin.compute.get_server(decoy.id).status != "DELETED"  # alice's own server is hers
    finally:
        nova_admin.compute.delete_server(decoy.id, ignore_missing=True)
