"""Smoke test of the adminvms test control plane, the way the openstack driver will use it.

    make openstack-smoke        # or: .openstack/python tests/openstack/smoke.py

Runs with the control plane's venv (`.openstack/python`, written by up.sh).
It runs up.sh first (a no-op when everything answers), then, as the
provider's service account (cloud `adminvms-test`):

1. creates a port on acme's network (from the service project) and a server
   with that port plus one on the management network, tagged and stamped;
2. waits for ACTIVE and checks it has addresses on both networks;
3. finds it by tag (Nova filters tags server-side);
4. locks it with a reason; the service project's non-admin user gets 409 on
   reboot, and acme's own user (alice) cannot see it at all;
5. boots two members of an anti-affinity group and checks they land on the
   two different compute hosts, and that a third ends ERROR with "No valid host";
6. volumes (Cinder, fake backend): alice (cloud `adminvms-acme`) creates a
   1 GB volume in acme and sets its metadata `adminvms:category=vsa`; the
   service account finds it among all projects' volumes, attaches it to the
   server of step 1 (`in-use`), detaches it (`available`), and alice deletes it;
7. deletes everything it made, and prints timings.
"""

import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import openstack
from openstack import exceptions

HERE = Path(__file__).resolve().parent
STATE = Path(os.environ.get("ADMINVMS_OPENSTACK_STATE", HERE.parent.parent / ".openstack"))
# Tags at create (2.52), locked_reason (2.73): the driver pins at least this.
COMPUTE_MICROVERSION = "2.73"
TIMEOUT = 60.0


def say(message):
    print(f"smoke: {message}", flush=True)


def connect(cloud):
    return openstack.connect(cloud=cloud, compute_api_version=COMPUTE_MICROVERSION)


def wait_active(conn, server, timeout=TIMEOUT, expect_error=False):
    """Poll every 0.1 s; return the server and the seconds it took."""
    started = time.monotonic()
    while True:
        server = conn.compute.get_server(server.id)
        if server.status == "ACTIVE" and not expect_error:
            return server, time.monotonic() - started
        if server.status == "ERROR":
            if expect_error:
                return server, time.monotonic() - started
            raise SystemExit(f"smoke: server {server.name} went ERROR: {server.fault}")
        if time.monotonic() - started > timeout:
            raise SystemExit(f"smoke: server {server.name} still {server.status} after {timeout:.0f} s")
        time.sleep(0.1)


def wait_gone(conn, server_ids, timeout=TIMEOUT):
    started = time.monotonic()
    for server_id in server_ids:
        while conn.compute.find_server(server_id, ignore_missing=True, all_projects=True) is not None:
            if time.monotonic() - started > timeout:
                raise SystemExit(f"smoke: server {server_id} still there {timeout:.0f} s after delete")
            time.sleep(0.1)
    return time.monotonic() - started


def wait_volume(conn, volume_id, status, timeout=TIMEOUT):
    """Poll every 0.1 s until the volume has `status` (None: until it is gone)."""
    started = time.monotonic()
    while True:
        try:
            volume = conn.block_storage.get_volume(volume_id)
        except exceptions.NotFoundException:
            volume = None
        current = volume.status if volume is not None else None
        if current == status:
            return volume, time.monotonic() - started
        if current in ("error", "error_deleting", "error_attaching", "error_detaching"):
            raise SystemExit(f"smoke: volume {volume_id} went {current}")
        if time.monotonic() - started > timeout:
            raise SystemExit(f"smoke: volume {volume_id} still {current} after {timeout:.0f} s (waiting for {status})")
        time.sleep(0.1)


def expect(exception_type, call, what):
    try:
        call()
    except exception_type as exc:
        say(f"ok: {what} -> HTTP {exc.status_code}")
        return
    raise SystemExit(f"smoke: expected {exception_type.__name__} for {what}, but it succeeded")


def run_up():
    started = time.monotonic()
    subprocess.run(["bash", str(HERE / "up.sh")], check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - started


def main():
    up_seconds = run_up()
    os.environ.setdefault("OS_CLIENT_CONFIG_FILE", str(STATE / "clouds.yaml"))
    bringup = STATE / "run" / "bringup.txt"
    last_bringup = bringup.read_text().strip() if bringup.exists() else "?"
    say(f"up.sh now: {up_seconds:.2f} s; last real bring-up: {last_bringup}")

    admin = connect("adminvms-test")
    alice = connect("adminvms-acme")
    member = connect("adminvms-member")
    run_id = uuid.uuid4().hex[:8]
    instance_tag = f"adminvms-instance-smoke-{run_id}"
    made_servers, made_ports, made_groups, made_volumes = [], [], [], []
    timings = {}
    try:
        version = admin.compute.get("/", microversion=None).json()["version"]
        say(f"nova {version['min_version']}..{version['version']}; pinned {COMPUTE_MICROVERSION}")

        flavor = admin.compute.find_flavor("m1.tiny", ignore_missing=False)
        image = admin.image.find_image("debian-12", ignore_missing=False)
        acme = admin.identity.find_project("acme", ignore_missing=False)
        acme_net = admin.network.find_network("acme-net", project_id=acme.id, ignore_missing=False)
        management = admin.network.find_network("management", ignore_missing=False)

        # 1. A port on the tenant's network, owned by the service project (the
        #    server's project: Nova refuses a port of another project).
        port = admin.network.create_port(network_id=acme_net.id, name=f"smoke-{run_id}-acme")
        made_ports.append(port.id)
        started = time.monotonic()
        server = admin.compute.create_server(
            name=f"smoke-{run_id}",
            flavor_id=flavor.id,
            image_id=image.id,
            networks=[{"port": port.id}, {"uuid": management.id}],
            tags=["adminvms", instance_tag],
            metadata={"adminvms_category": "vsa", "adminvms_project": "acme"},
        )
        made_servers.append(server.id)
        server, _ = wait_active(admin, server)
        timings["create to ACTIVE"] = time.monotonic() - started
        say(f"server {server.name} ACTIVE on {server.compute_host} in {timings['create to ACTIVE']:.2f} s")

        # 2. Addresses on both networks.
        addresses = {net: [a["addr"] for a in addrs] for net, addrs in server.addresses.items()}
        assert set(addresses) == {"acme-net", "management"}, addresses
        say(f"ok: addresses {addresses}")

        # 3. Found by tag, server-side; and in the all-projects listing.
        found = list(admin.compute.servers(tags=instance_tag))
        assert [s.id for s in found] == [server.id], found
        found_all = list(admin.compute.servers(all_projects=True, tags="adminvms"))
        assert server.id in {s.id for s in found_all}
        say(f"ok: found by tag {instance_tag}; {len(found_all)} server(s) tagged adminvms in all projects")

        # 4. Locked with a reason: the admin account still acts, others cannot.
        admin.compute.lock_server(server, locked_reason="managed by adminvms: use the dashboard")
        server = admin.compute.get_server(server.id)
        assert server.is_locked and server.locked_reason.startswith("managed by adminvms"), server
        say(f"ok: locked ({server.locked_reason!r})")
        expect(
            exceptions.ConflictException,
            lambda: member.compute.reboot_server(server.id, "SOFT"),
            "reboot by the service project's non-admin user",
        )
        expect(
            exceptions.ConflictException,
            lambda: member.compute.delete_server(server.id),
            "delete by the service project's non-admin user",
        )
        expect(exceptions.NotFoundException, lambda: alice.compute.get_server(server.id), "alice (acme) shows it")
        assert server.id not in {s.id for s in alice.compute.servers()}
        say("ok: alice's server list does not have it")

        # 5. Anti-affinity across the two fake hypervisors.
        group = admin.compute.create_server_group(name=f"smoke-{run_id}-aa", policy="anti-affinity")
        made_groups.append(group.id)
        started = time.monotonic()
        members = []
        for index in range(2):
            members.append(
                admin.compute.create_server(
                    name=f"smoke-{run_id}-aa{index}",
                    flavor_id=flavor.id,
                    image_id=image.id,
                    networks=[{"uuid": management.id}],
                    tags=["adminvms"],
                    scheduler_hints={"group": group.id},
                )
            )
            made_servers.append(members[-1].id)
        members = [wait_active(admin, m)[0] for m in members]
        timings["two group members to ACTIVE"] = time.monotonic() - started
        hosts = [m.compute_host for m in members]
        assert len(set(hosts)) == 2, hosts
        say(f"ok: anti-affinity members on {hosts}")
        third = admin.compute.create_server(
            name=f"smoke-{run_id}-aa2",
            flavor_id=flavor.id,
            image_id=image.id,
            networks=[{"uuid": management.id}],
            scheduler_hints={"group": group.id},
        )
        made_servers.append(third.id)
        third, _ = wait_active(admin, third, expect_error=True)
        assert "No valid host" in third.fault["message"], third.fault
        say(f"ok: a third member is ERROR: {third.fault['message']!r}")

        # 6. A tenant's volume (Cinder), attached to the provider's server.
        started = time.monotonic()
        volume = alice.block_storage.create_volume(size=1, name=f"smoke-{run_id}-vol", description="adminvms smoke")
        made_volumes.append(volume.id)
        volume, _ = wait_volume(alice, volume.id, "available")
        timings["volume create to available"] = time.monotonic() - started
        alice.block_storage.set_volume_metadata(volume, **{"adminvms:category": "vsa"})
        volume = alice.block_storage.get_volume(volume.id)
        assert volume.metadata.get("adminvms:category") == "vsa", volume.metadata
        assert volume.project_id == acme.id, volume.project_id
        say(
            f"ok: alice's volume {volume.name} ({volume.size} GB, {volume.volume_type}) available,"
            f" metadata {volume.metadata}"
        )
        everyone = list(admin.block_storage.volumes(all_projects=True))
        assert volume.id in {v.id for v in everyone}, everyone
        own = list(admin.block_storage.volumes())
        assert volume.id not in {v.id for v in own}, own
        say(f"ok: {len(everyone)} volume(s) in all projects for the service account, alice's among them")
        started = time.monotonic()
        attachment = admin.compute.create_volume_attachment(server, volume_id=volume.id)
        volume, _ = wait_volume(admin, volume.id, "in-use")
        timings["volume attach to in-use"] = time.monotonic() - started
        assert [a["server_id"] for a in volume.attachments] == [server.id], volume.attachments
        listed = [a.volume_id for a in admin.compute.volume_attachments(server)]
        assert listed == [volume.id], listed
        say(
            f"ok: attached to {server.name} as {attachment.device}; alice sees it"
            f" {alice.block_storage.get_volume(volume.id).status}"
        )
        started = time.monotonic()
        admin.compute.delete_volume_attachment(server, volume.id)
        wait_volume(admin, volume.id, "available")
        timings["volume detach to available"] = time.monotonic() - started
        assert not list(admin.compute.volume_attachments(server))
        started = time.monotonic()
        alice.block_storage.delete_volume(volume.id)
        wait_volume(alice, volume.id, None)
        made_volumes.remove(volume.id)
        timings["volume delete to gone"] = time.monotonic() - started
        say("ok: detached (available) and deleted by alice")

        # API latency: a few typical reads.
        samples = []
        for _ in range(10):
            for call in (
                lambda: admin.compute.get_server(server.id),
                lambda: list(admin.compute.servers(tags=instance_tag)),
                lambda: admin.network.get_port(port.id),
            ):
                t = time.monotonic()
                call()
                samples.append(time.monotonic() - t)
        timings["API call (median of 30)"] = statistics.median(samples)
        timings["API call (max of 30)"] = max(samples)
    finally:
        started = time.monotonic()
        for server_id in made_servers:
            admin.compute.delete_server(server_id, ignore_missing=True)
        wait_gone(admin, made_servers)
        for port_id in made_ports:  # a port we made ourselves outlives its server
            admin.network.delete_port(port_id, ignore_missing=True)
        for group_id in made_groups:
            admin.compute.delete_server_group(group_id, ignore_missing=True)
        for volume_id in made_volumes:  # only if a step above failed
            admin.block_storage.delete_volume(volume_id, ignore_missing=True, force=True)
        timings["delete all, until gone"] = time.monotonic() - started
        say(f"cleaned up {len(made_servers)} servers, {len(made_ports)} port, {len(made_groups)} server group")

    for name, seconds in timings.items():
        say(f"{name:32s} {seconds:6.3f} s")
    say("passed")


if __name__ == "__main__":
    sys.exit(main())
