"""Auto-heal and spare pools on the local OpenStack control plane (two fake compute hosts).

A server deleted behind adminvms' back is healed onto the instance's next server generation, in
the category's own server group, locked, with the management address its kept port holds. Spares
wait in the pool's project on the management network; a launch takes one, which joins the
project's network, and hard anti-affinity holds against them although they sit outside the
project's server group (Nova's ``different_host`` hint)."""

from __future__ import annotations

import pytest

from categories.models import InstanceCategory
from instances import services
from instances.drivers.registry import get_driver
from instances.models import Instance
from instances.services.execution import _spec

from . import test_openstack
from .conftest import wait_until
from .test_openstack import SETTLE, _launch, _servers, _settled, _terminate_all

# The driver tests' fixtures: the control plane's clouds.yaml, the service account, the demo on
# OpenStack, a worker on it, and the lb category under a slug (and server group) of this run's own.
clouds_file, nova_admin, on_openstack, os_worker, lb_of_this_run = (
    test_openstack.clouds_file,
    test_openstack.nova_admin,
    test_openstack.on_openstack,
    test_openstack.os_worker,
    test_openstack.lb_of_this_run,
)

pytestmark = [pytest.mark.openstack, pytest.mark.worker]
HOSTS = {"compute1", "compute2"}


@pytest.fixture
def lb(on_openstack, lb_of_this_run, nova_admin, settings):
    """The lb category of this run (provider-managed, dual-homed, hard anti-affinity, no health check:
    nothing answers probes on the fake hypervisor), auto-healed; → (category, its acme server group's
    name). The spare pool's server group is deleted afterwards too."""
    slug, group_name = lb_of_this_run
    category = InstanceCategory.objects.get(slug=slug)
    assert (category.anti_affinity, category.network_placement, category.health_check_port) == (
        "anti-affinity", "both", None,
    )  # fmt: skip
    category.auto_heal = True
    category.save()
    yield category, group_name
    # A test that failed half-way leaves servers (spares too) and ports: they go, with this run's groups.
    ids = {str(pk) for pk in Instance.objects.values_list("pk", flat=True)}
    servers = [
        s
        for s in nova_admin.compute.servers(all_projects=True, tags="adminvms")
        if any(t.removeprefix("adminvms-instance:") in ids for t in s.tags or ())
    ]
    for server in servers:
        nova_admin.compute.delete_server(server.id, ignore_missing=True)
    for server in servers:
        nova_admin.compute.wait_for_delete(server, interval=0.2, wait=60)
    for iid in ids:
        for port in nova_admin.network.ports(tags=f"adminvms-instance:{iid}"):
            nova_admin.network.delete_port(port, ignore_missing=True)
    pool_group = f"adminvms-{settings.ADMINVMS['SPARE_PROJECT']}-{slug}"
    for group in nova_admin.compute.server_groups():
        if group.name == pool_group:
            nova_admin.compute.delete_server_group(group, ignore_missing=True)


def _group_members(nova_admin, name: str) -> set[str]:
    [group] = [g for g in nova_admin.compute.server_groups() if g.name == name]
    return set(group.member_ids)


def _no_ports_left(nova_admin, ids) -> None:
    for iid in ids:
        assert list(nova_admin.network.ports(tags=f"adminvms-instance:{iid}")) == [], f"ports of {iid} left"


def test_a_server_deleted_behind_our_back_is_healed_into_its_server_group_locked(
    lb, on_openstack, api, os_worker, nova_admin
):
    category, group_name = lb
    worker = os_worker()
    admin = api(on_openstack.admin)
    ids = [_launch(admin, name=f"os-heal-{n}", category=category.slug, project="acme") for n in range(2)]
    for iid in ids:
        wait_until(_settled(admin, iid, "ACTIVE"), SETTLE, "lb launch", worker)
    victim, other = (Instance.objects.get(pk=iid) for iid in ids)
    [old] = _servers(nova_admin, victim.pk)
    assert old.is_locked and {old.id, other.backend_id} <= _group_members(nova_admin, group_name)

    # An operator's accident: the admin deletes the (locked) server through Nova.
    nova_admin.compute.delete_server(old.id)
    nova_admin.compute.wait_for_delete(old, interval=0.2, wait=60)
    [run] = services.instances_reconcile(backends=["openstack"])
    assert run.vanished == [str(victim.pk)]
    victim.refresh_from_db()
    assert (victim.status, victim.health) == ("ERROR", "unhealthy")

    report = services.fleet_run()
    assert (report.heals, report.heals_paused, report.breakers_opened) == (1, 0, [])
    wait_until(_settled(admin, victim.pk, "ACTIVE"), SETTLE, "heal", worker)

    healed = Instance.objects.get(pk=victim.pk)
    assert (healed.name, healed.generation, healed.fault) == ("os-heal-0", 1, "")
    assert healed.backend_id != old.id
    # The same management endpoint: Nova kept the ports it did not make, and the replacement took them.
    assert healed.addresses == victim.addresses and healed.addresses["management"]
    [new] = _servers(nova_admin, victim.pk)
    assert new.id == healed.backend_id and new.status == "ACTIVE" and new.is_locked
    assert "adminvms-generation:1" in new.tags and new.project_id == nova_admin.current_project_id
    assert {new.id, other.backend_id} <= _group_members(nova_admin, group_name)  # the same group
    assert new.compute_host != nova_admin.compute.get_server(other.backend_id).compute_host
    heal = healed.actions.get(action="heal")
    assert heal.status == "succeeded" and heal.requested_by is None
    assert {"spawning", "locked", "moved"} <= set(heal.events.values_list("event", flat=True))
    assert Instance.objects.get(pk=other.pk).backend_id == other.backend_id  # untouched

    _terminate_all(admin, worker)
    assert _servers(nova_admin, victim.pk) == []
    _no_ports_left(nova_admin, ids)


def test_terminating_an_instance_whose_server_vanished_deletes_the_ports_left(
    lb, on_openstack, api, os_worker, nova_admin
):
    category, _group = lb
    category.auto_heal = False
    category.save()
    worker = os_worker()
    admin = api(on_openstack.admin)
    iid = _launch(admin, name="os-gone", category=category.slug, project="acme")
    wait_until(_settled(admin, iid, "ACTIVE"), SETTLE, "lb launch", worker)
    [server] = _servers(nova_admin, iid)
    nova_admin.compute.delete_server(server.id)
    nova_admin.compute.wait_for_delete(server, interval=0.2, wait=60)
    assert len(list(nova_admin.network.ports(tags=f"adminvms-instance:{iid}"))) == 2  # kept by Nova, unbound
    services.instances_reconcile(backends=["openstack"])
    _terminate_all(admin, worker)
    assert Instance.objects.get(pk=iid).status == "DELETED"
    _no_ports_left(nova_admin, [iid])


def test_a_heal_of_a_running_server_makes_a_second_server_with_ports_of_its_own(
    lb, on_openstack, api, os_worker, nova_admin
):
    """The old server still runs while its replacement builds: the replacement is the next generation
    (never the old server found again), on the other host (the old one is in the group), on new ports
    (the old server holds its own); the old server goes with exactly its ports."""
    category, group_name = lb
    worker = os_worker()
    admin = api(on_openstack.admin)
    iid = _launch(admin, name="os-heal-live", category=category.slug, project="acme")
    wait_until(_settled(admin, iid, "ACTIVE"), SETTLE, "lb launch", worker)
    before = Instance.objects.get(pk=iid)
    [old] = _servers(nova_admin, iid)
    old_ports = {p.id for p in nova_admin.network.ports(device_id=old.id)}
    assert len(old_ports) == 2

    answer = admin.post(f"/api/v1/instances/{iid}/action/", {"action": "heal"}, format="json")
    assert answer.status_code == 202, answer.content
    wait_until(_settled(admin, iid, "ACTIVE"), SETTLE, "heal by hand", worker)
    healed = Instance.objects.get(pk=iid)
    assert healed.actions.get(action="heal").status == "succeeded"
    assert healed.generation == 1 and healed.backend_id != old.id
    nova_admin.compute.wait_for_delete(old, interval=0.2, wait=60)  # Nova deletes in the background
    [new] = _servers(nova_admin, iid)  # the new server alone carries the instance now
    assert new.id == healed.backend_id and "adminvms-generation:1" in new.tags and new.is_locked
    assert new.compute_host != old.compute_host and new.id in _group_members(nova_admin, group_name)
    new_ports = {p.id for p in nova_admin.network.ports(device_id=new.id)}
    assert len(new_ports) == 2 and not new_ports & old_ports
    assert {p.id for p in nova_admin.network.ports(tags=f"adminvms-instance:{iid}")} == new_ports
    assert healed.addresses["management"] != before.addresses["management"]

    _terminate_all(admin, worker)
    _no_ports_left(nova_admin, [iid])


def _spares(category) -> list[Instance]:
    return list(Instance.objects.filter(is_spare=True, category=category).exclude(status="DELETED"))


def _spares_ready(category, n: int):
    def check():
        spares = _spares(category)
        ready = len(spares) == n and all(s.status == "ACTIVE" and not s.task_state for s in spares)
        return spares if ready else None

    return check


def test_spares_serve_launches_and_hard_anti_affinity_holds_beyond_the_server_group(
    lb, on_openstack, api, os_worker, nova_admin
):
    category, group_name = lb
    InstanceCategory.objects.filter(pk=category.pk).update(spare_pool_size=2)
    worker = os_worker()
    assert services.fleet_run().spares_launched == 2
    spares = wait_until(_spares_ready(category, 2), SETTLE, "two spares", worker)
    assert {s.host for s in spares} == HOSTS  # spread by the pool's (soft) group
    assert all(set(s.addresses) == {"management"} and s.project.slug == "adminvms-spares" for s in spares)
    # Locked like every managed server: the hand-over below changes locked servers (as an admin may).
    assert all(nova_admin.compute.get_server(s.backend_id).is_locked for s in spares)

    admin = api(on_openstack.admin)
    ids = [_launch(admin, name=f"os-edge-{n}", category=category.slug, project="acme") for n in (1, 2)]
    assert set(ids) == {str(s.pk) for s in spares}  # both served from the pool
    for iid in ids:
        wait_until(_settled(admin, iid, "ACTIVE"), SETTLE, "launch from the pool", worker)
    launched = [Instance.objects.get(pk=iid) for iid in ids]
    assert {i.host for i in launched} == HOSTS
    acme_net = nova_admin.network.find_network("acme-net", project_id=nova_admin.identity.find_project("acme").id)
    for inst in launched:
        launch = inst.actions.filter(action="launch").order_by("created_at").last()
        assert (launch.params, launch.status) == ({"from_pool": True}, "succeeded")
        assert "assigned" in set(launch.events.values_list("event", flat=True))
        assert (inst.project, inst.is_spare, set(inst.addresses)) == (
            on_openstack.acme,
            False,
            {"project", "management"},
        )
        server = nova_admin.compute.get_server(inst.backend_id)
        assert (server.name, server.metadata["adminvms_project"], server.is_locked) == (inst.name, "acme", True)
        project_ports = [p for p in nova_admin.network.ports(device_id=server.id) if p.network_id == acme_net.id]
        assert [ip["ip_address"] for p in project_ports for ip in p.fixed_ips] == inst.addresses["project"]
        assert {"adminvms", f"adminvms-instance:{inst.pk}"} <= set(project_ports[0].tags)
    # A second hand-over (a redelivered task) changes nothing.
    again = get_driver("openstack").assign(launched[0].backend_id, _spec(launched[0]))
    assert (again.addresses, again.host) == (launched[0].addresses, launched[0].host)
    assert len(list(nova_admin.network.ports(device_id=launched[0].backend_id))) == 2

    assert services.fleet_run().spares_launched == 2  # the pool refills
    wait_until(_spares_ready(category, 2), SETTLE, "the pool refilled", worker)

    # A cold launch: both hosts hold one of the project's lbs, although neither is in its group.
    InstanceCategory.objects.filter(pk=category.pk).update(spare_pool_size=0)
    third = _launch(admin, name="os-edge-3", category=category.slug, project="acme")
    body = wait_until(_settled(admin, third, "ERROR"), SETTLE, "cold launch refused", worker)
    assert "No valid host" in body["fault"]
    assert Instance.objects.get(pk=third).actions.get(action="launch").params == {}
    # Its group (made for it) holds only it: the spares were handed over, not moved into it.
    assert _group_members(nova_admin, group_name) == {Instance.objects.get(pk=third).backend_id}

    everything = list(Instance.objects.values_list("pk", flat=True))
    _terminate_all(admin, worker)
    _no_ports_left(nova_admin, everything)
