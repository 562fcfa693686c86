"""Create, idempotently, what the adminvms tests and demo need in the test control plane.

Run by up.sh with the control plane's own venv (it has openstacksdk):

    bootstrap.py identity   # Keystone only: projects, users, roles, catalog
    bootstrap.py resources  # flavors, images, networks; waits for both fake hypervisors and Cinder's backend
    bootstrap.py clouds DIR # writes DIR/clouds.yaml and DIR/env

Every step looks before it creates, so a second run changes nothing. It talks
to the services through their APIs only, with the bootstrap admin's password.
"""

import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import openstack

KEYSTONE_URL = os.environ.get("ADMINVMS_OS_KEYSTONE_URL", "http://127.0.0.1:5000/v3")
REGION = "RegionOne"
# Test-only passwords for a control plane that listens on 127.0.0.1 only.
ADMIN_PASSWORD = os.environ.get("ADMINVMS_OS_ADMIN_PASSWORD", "admin-secret")
SERVICE_PASSWORD = os.environ.get("ADMINVMS_OS_SERVICE_PASSWORD", "service-secret")
USER_PASSWORD = os.environ.get("ADMINVMS_OS_USER_PASSWORD", "adminvms-secret")

ENDPOINTS = {
    # service name: (type, url)
    "placement": ("placement", "http://127.0.0.1:8778"),
    "glance": ("image", "http://127.0.0.1:9292"),
    "nova": ("compute", "http://127.0.0.1:8774/v2.1"),
    "neutron": ("network", "http://127.0.0.1:9696"),
    # The official type (openstacksdk's block_storage finds it; Nova's [cinder]
    # catalog_info names it). The project-less form /v3 needs microversion 3.67
    # on every request, which Nova's cinderclient (3.44 and up) does not send.
    "cinder": ("block-storage", "http://127.0.0.1:8776/v3/%(project_id)s"),
}
SERVICE_USERS = ("nova", "neutron", "glance", "placement", "cinder")

# The provider's service account (admin in `service`, and admin in `adminvms-locks`, the scope
# its locks are made in so that members of `service` cannot lift them), a non-admin user of the
# service project (to show that locks hold), and one member per demo tenant.
PROVIDER_USER = "adminvms"
LOCK_PROJECT = "adminvms-locks"
SERVICE_MEMBER = "adminvms-member"
TENANTS = {"acme": ("alice", "10.0.10.0/24"), "globex": ("bob", "10.0.20.0/24")}
MANAGEMENT = {"network": "management", "physnet": "management", "cidr": "172.30.0.0/24"}

FLAVORS = {"m1.tiny": (1, 512, 1), "m1.small": (1, 2048, 20), "m1.large": (4, 8192, 80)}
IMAGES = {"debian-12": "standard", "lb-amphora": "lb", "vsa-appliance": "vsa"}
IMAGE_BYTES = 4096
COMPUTE_HOSTS = ("compute1", "compute2")
# nova-compute reports every 10 s (report_interval).
REPORT_FRESH_SECONDS = 30


def log(message):
    print(f"bootstrap: {message}", flush=True)


def admin(system=False):
    """The bootstrap admin: system scope for identity, project scope for the rest."""
    scope = {"system_scope": "all"} if system else {"project_name": "admin", "project_domain_name": "Default"}
    return openstack.connect(
        auth_url=KEYSTONE_URL,
        username="admin",
        password=ADMIN_PASSWORD,
        user_domain_name="Default",
        region_name=REGION,
        load_yaml_config=False,
        load_envvars=False,
        **scope,
    )


def ensure_project(conn, name, description):
    project = conn.identity.find_project(name, domain_id="default")
    if project is None:
        project = conn.identity.create_project(name=name, domain_id="default", description=description)
        log(f"created project {name}")
    return project


def ensure_user(conn, name, password, project):
    user = conn.identity.find_user(name, domain_id="default")
    if user is None:
        user = conn.identity.create_user(
            name=name, password=password, domain_id="default", default_project_id=project.id
        )
        log(f"created user {name}")
    return user


def ensure_role_assignment(conn, project, user, role):
    if not conn.identity.validate_user_has_project_role(project, user, role):
        conn.identity.assign_project_role_to_user(project, user, role)
        log(f"granted {role.name} on {project.name} to {user.name}")


def ensure_endpoints(conn, name, service_type, url):
    service = conn.identity.find_service(name)
    if service is None:
        service = conn.identity.create_service(name=name, type=service_type, enabled=True)
        log(f"created service {name} ({service_type})")
    existing = {e.interface: e for e in conn.identity.endpoints(service_id=service.id, region_id=REGION)}
    for interface in ("public", "internal"):
        endpoint = existing.get(interface)
        if endpoint is None:
            conn.identity.create_endpoint(service_id=service.id, interface=interface, url=url, region_id=REGION)
            log(f"created {interface} endpoint {url} for {name}")
        elif endpoint.url != url:
            conn.identity.update_endpoint(endpoint, url=url)
            log(f"moved {interface} endpoint of {name} to {url}")


def identity():
    conn = admin(system=True)
    roles = {name: conn.identity.find_role(name, ignore_missing=False) for name in ("admin", "member", "service")}
    service = ensure_project(conn, "service", "OpenStack services and the provider's adminvms service account")
    for name in SERVICE_USERS:
        ensure_role_assignment(conn, service, ensure_user(conn, name, SERVICE_PASSWORD, service), roles["service"])
    provider = ensure_user(conn, PROVIDER_USER, USER_PASSWORD, service)
    ensure_role_assignment(conn, service, provider, roles["admin"])
    locks = ensure_project(conn, LOCK_PROJECT, "The adminvms service account's admin scope for locks")
    ensure_role_assignment(conn, locks, provider, roles["admin"])
    ensure_role_assignment(conn, service, ensure_user(conn, SERVICE_MEMBER, USER_PASSWORD, service), roles["member"])
    for project_name, (user_name, _) in TENANTS.items():
        project = ensure_project(conn, project_name, f"Demo tenant {project_name}")
        ensure_role_assignment(conn, project, ensure_user(conn, user_name, USER_PASSWORD, project), roles["member"])
        # adminvms launches the tenant's `user`-category servers in the tenant's own project
        # (connect_as_project), so its service account needs a role there.
        ensure_role_assignment(conn, project, provider, roles["member"])
    for name, (service_type, url) in ENDPOINTS.items():
        ensure_endpoints(conn, name, service_type, url)


def wait_for(what, check, timeout=120.0, interval=0.5):
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
        except openstack.exceptions.SDKException as exc:
            result, last = None, exc
        else:
            last = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise SystemExit(f"bootstrap: gave up waiting for {what} after {timeout:.0f} s ({last or 'not yet'})")
        time.sleep(interval)


def ensure_flavors(conn):
    existing = {f.name: f for f in conn.compute.flavors(is_public=None)}
    for name, (vcpus, ram, disk) in FLAVORS.items():
        if name not in existing:
            conn.compute.create_flavor(name=name, vcpus=vcpus, ram=ram, disk=disk, is_public=True)
            log(f"created flavor {name} ({vcpus} vCPU, {ram} MB, {disk} GB)")


def ensure_images(conn):
    for name, category in IMAGES.items():
        tag = f"adminvms:category={category}"
        image = conn.image.find_image(name)
        if image is not None and image.status != "active":
            # An upload interrupted by a previous run: start over.
            conn.image.delete_image(image)
            image = None
        if image is None:
            image = conn.image.create_image(
                name=name,
                disk_format="raw",
                container_format="bare",
                visibility="public",
                data=b"\0" * IMAGE_BYTES,
                tags=[tag],
            )
            log(f"created image {name} ({IMAGE_BYTES} bytes, tag {tag})")
        elif tag not in image.tags:
            conn.image.add_tag(image, tag)
            log(f"tagged image {name} with {tag}")


def ensure_network(conn, name, project, cidr, **provider):
    network = conn.network.find_network(name, project_id=project.id)
    if network is None:
        network = conn.network.create_network(name=name, project_id=project.id, **provider)
        log(f"created network {name} ({network.provider_network_type}, segment {network.provider_segmentation_id})")
    subnet_name = f"{name}-subnet"
    if conn.network.find_subnet(subnet_name, network_id=network.id) is None:
        conn.network.create_subnet(
            name=subnet_name, network_id=network.id, project_id=project.id, ip_version=4, cidr=cidr
        )
        log(f"created subnet {subnet_name} {cidr}")
    return network


def ensure_networks(conn, identity_conn):
    service = identity_conn.identity.find_project("service", domain_id="default", ignore_missing=False)
    ensure_network(
        conn,
        MANAGEMENT["network"],
        service,
        MANAGEMENT["cidr"],
        shared=True,
        provider_network_type="flat",
        provider_physical_network=MANAGEMENT["physnet"],
    )
    for project_name, (_, cidr) in TENANTS.items():
        project = identity_conn.identity.find_project(project_name, domain_id="default", ignore_missing=False)
        # No provider attributes: Neutron allocates a VLAN on physnet `tenant`,
        # as it would for the tenant's own `openstack network create`.
        ensure_network(conn, f"{project_name}-net", project, cidr)


def process_started_at(pid):
    """Start time (epoch seconds) of a live process, None if it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = next(line for line in Path("/proc/stat").read_text().splitlines() if line.startswith("btime "))
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":
        return None
    return int(boot.split()[1]) + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def computes_ready(conn):
    """Both nova-compute processes run, have reported since they started, and are mapped to cell1.

    A service record stays `up` for service_down_time (60 s) after its process
    died, so its state alone says nothing right after a restart. The
    hypervisor list shows only hosts mapped to a cell (the scheduler maps
    them every 2 s), which is what scheduling needs.
    """
    pids = dict(item.split(":") for item in os.environ.get("ADMINVMS_OS_COMPUTE_PIDS", "").split())
    for host, pid in pids.items():
        if process_started_at(pid) is None:
            raise SystemExit(f"bootstrap: nova-{host} (pid {pid}) exited; see its log in .openstack/logs/")
    services = {s.host: s for s in conn.compute.services(binary="nova-compute")}
    hypervisors = {h.name for h in conn.compute.hypervisors()}
    for host in COMPUTE_HOSTS:
        service = services.get(host)
        if service is None or service.state != "up" or service.status != "enabled" or host not in hypervisors:
            return False
        # A record never updated was just created, by the process that runs now.
        # Otherwise the last report must come from this process and be recent:
        # a compute whose report call hung in a RabbitMQ outage looks `up` for
        # a minute while the scheduler already counts it out.
        started = process_started_at(pids[host]) if host in pids else None
        if service.updated_at and started is not None:
            reported = datetime.fromisoformat(service.updated_at).replace(tzinfo=UTC).timestamp()
            if reported < max(started, time.time() - REPORT_FRESH_SECONDS):
                return False
    return True


def volume_backend_ready(conn):
    """cinder-volume is up and the scheduler has its capabilities (it places nothing before).

    The scheduler lists a backend's pools only once that backend reported to it.
    """
    services = list(conn.block_storage.services(binary="cinder-volume"))
    if not any(s.state == "up" and s.status == "enabled" for s in services):
        return False
    return list(conn.block_storage.backend_pools())


def resources():
    conn = admin()
    ensure_flavors(conn)
    ensure_images(conn)
    ensure_networks(conn, admin(system=True))
    wait_for("both nova-compute services up with their hypervisors", lambda: computes_ready(conn))
    log(f"compute hosts up: {', '.join(COMPUTE_HOSTS)}")
    pools = wait_for("cinder-volume up and known to cinder-scheduler", lambda: volume_backend_ready(conn))
    log(f"volume backend up: {', '.join(p.name for p in pools)}")


def cloud(username, project):
    return {
        "auth": {
            "auth_url": KEYSTONE_URL,
            "username": username,
            "password": USER_PASSWORD,
            "project_name": project,
            "user_domain_name": "Default",
            "project_domain_name": "Default",
        },
        "region_name": REGION,
        "identity_api_version": 3,
        "interface": "public",
    }


def clouds(directory):
    import yaml  # in the control plane's venv through openstacksdk

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    document = {
        "clouds": {
            "adminvms-test": cloud(PROVIDER_USER, "service"),
            "adminvms-test-lock": cloud(PROVIDER_USER, LOCK_PROJECT),
            "adminvms-member": cloud(SERVICE_MEMBER, "service"),
            **{f"adminvms-{project}": cloud(user, project) for project, (user, _) in TENANTS.items()},
        }
    }
    header = "# Written by tests/openstack/up.sh for the local test control plane (127.0.0.1, test-only passwords).\n"
    write_if_changed(directory / "clouds.yaml", header + yaml.safe_dump(document, sort_keys=False))
    env = (
        "# Source me: the adminvms test control plane (tests/openstack/up.sh).\n"
        f"export OS_CLIENT_CONFIG_FILE={directory.resolve() / 'clouds.yaml'}\n"
        "export OS_CLOUD=adminvms-test\n"
    )
    write_if_changed(directory / "env", env)


def write_if_changed(path, text):
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
        path.chmod(0o600)
        log(f"wrote {path}")


def main(argv):
    steps = {"identity": identity, "resources": resources, "clouds": clouds}
    if len(argv) < 2 or argv[1] not in steps:
        raise SystemExit(f"usage: {argv[0]} {{{'|'.join(steps)}}} [args]")
    steps[argv[1]](*argv[2:])


if __name__ == "__main__":
    main(sys.argv)
