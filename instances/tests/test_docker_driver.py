"""The docker driver against a real Docker Engine (brought up by scripts/ensure-docker.sh).

Every test works in its own project (``dkt-<random>``) and removes the
containers and the project network it made, so runs in parallel do not
collide. The images come from ``make docker-up``: ``adminvms/busybox:test``
(keeps running) and ``adminvms/appliance-gui:test`` (busybox httpd on 8080).
"""

from __future__ import annotations

import ipaddress
import statistics
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import replace
from pathlib import Path

import docker
import docker.errors
import pytest

from instances.drivers import docker as docker_driver
from instances.drivers.base import (
    BackendUnavailable,
    DriverError,
    FlavorSpec,
    ProbeTarget,
    ServerNotFound,
    ServerSpec,
    ServerStatus,
)
from instances.drivers.docker import MANAGEMENT_NETWORK, DockerDriver, container_name, project_network

pytestmark = pytest.mark.docker

BUSYBOX = "adminvms/busybox:test"
APPLIANCE = "adminvms/appliance-gui:test"
GUI_TEXT = b"adminvms appliance GUI"
ENSURE_DOCKER = Path(__file__).resolve().parents[2] / "scripts" / "ensure-docker.sh"

TIMINGS: dict[str, list[float]] = {"create → ACTIVE (driver)": [], "launch → ACTIVE (services, eager task)": []}


def _engine_ready() -> bool:
    try:
        client = docker.from_env(timeout=10)
        for image in (BUSYBOX, APPLIANCE):
            client.images.get(image)
        return True
    except docker.errors.DockerException:
        return False


@pytest.fixture(scope="module")
def engine(request):
    """The Docker SDK client of the tests (setup and checks behind the driver's back)."""
    if not _engine_ready():
        result = subprocess.run(["bash", str(ENSURE_DOCKER)], capture_output=True, text=True, timeout=600)
        if result.returncode != 0 or not _engine_ready():
            pytest.fail(f"No Docker Engine with the test images:\n{result.stdout}\n{result.stderr}")
    client = docker.from_env(timeout=30)
    yield client
    # The measurements of the note, printed past the output capture.
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    lines = [
        f"docker {label}: median {statistics.median(values) * 1000:.0f} ms, max {max(values) * 1000:.0f} ms "
        f"over {len(values)}"
        for label, values in TIMINGS.items()
        if values
    ]
    if lines:
        with capture.global_and_fixture_disabled():
            print("\n" + "\n".join(lines))
    client.close()


@pytest.fixture
def driver(engine) -> DockerDriver:
    return DockerDriver()


@pytest.fixture
def project(engine) -> str:
    """A fresh project slug; its containers and network are removed afterwards."""
    slug = f"dkt-{uuid.uuid4().hex[:10]}"
    yield slug
    for container in engine.containers.list(all=True, sparse=True, filters={"label": f"adminvms.project={slug}"}):
        container.remove(force=True)
    for network in engine.networks.list(names=[project_network(slug)]):
        if network.name == project_network(slug):
            network.remove()


@pytest.fixture
def spec(project):
    """``spec(**overrides)`` → a ServerSpec for a new instance in the test's project."""

    def make(**overrides) -> ServerSpec:
        values = {
            "instance_id": str(uuid.uuid4()),
            "name": "Test Box",
            "kind": "container",
            "project": project,
            "project_backend_id": "",
            "category": "cache",
            "managed": True,
            "flavor": FlavorSpec("m1.tiny", 1, 128, 1),
            "image": BUSYBOX,
            "image_name": "busybox",
            "network_placement": "project",
            **overrides,
        }
        return ServerSpec(**values)

    return make


def _create(driver: DockerDriver, server_spec: ServerSpec):
    started = time.perf_counter()
    info = driver.create(server_spec)
    if info.status == ServerStatus.ACTIVE:
        TIMINGS["create → ACTIVE (driver)"].append(time.perf_counter() - started)
    return info


def _get_page(endpoint: str, path: str = "/") -> bytes:
    """The page, once the server in the container listens: ACTIVE means its process runs, not that it serves yet."""
    deadline = time.monotonic() + 10
    while True:
        try:
            with urllib.request.urlopen(f"http://{endpoint}{path}", timeout=5) as response:
                return response.read()
        except (ConnectionError, urllib.error.URLError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


# --- the driver ------------------------------------------------------------------------------


def test_full_lifecycle(driver, spec, engine):
    info = _create(driver, spec())
    assert info.status == ServerStatus.ACTIVE
    assert info.backend_id and info.instance_id and info.host

    driver.stop(info.backend_id)
    assert driver.get(info.backend_id).status == ServerStatus.STOPPED
    driver.stop(info.backend_id)  # stopping a stopped container changes nothing
    driver.start(info.backend_id)
    assert driver.get(info.backend_id).status == ServerStatus.ACTIVE
    driver.reboot(info.backend_id)
    assert driver.get(info.backend_id).status == ServerStatus.ACTIVE
    started_at = engine.api.inspect_container(info.backend_id)["State"]["StartedAt"]
    driver.reboot(info.backend_id, hard=True)
    assert driver.get(info.backend_id).status == ServerStatus.ACTIVE
    assert engine.api.inspect_container(info.backend_id)["State"]["StartedAt"] != started_at

    driver.delete(info.backend_id)
    with pytest.raises(ServerNotFound):
        driver.get(info.backend_id)
    driver.delete(info.backend_id)  # already gone: not an error
    assert driver.find(info.instance_id) is None


def test_stop_is_quick_for_a_process_that_ignores_sigterm(driver, spec, engine, settings):
    # `sleep` as PID 1 ignores SIGTERM; the init the driver adds forwards it. The exit code says
    # which signal ended it (SIGTERM, not the SIGKILL of the timeout), whatever the machine's load.
    settings.ADMINVMS = {**settings.ADMINVMS, "DOCKER_STOP_TIMEOUT": 30}
    info = _create(driver, spec())
    started = time.perf_counter()
    driver.stop(info.backend_id)
    assert time.perf_counter() - started < 30
    assert engine.api.inspect_container(info.backend_id)["State"]["ExitCode"] == 128 + 15
    assert driver.get(info.backend_id).fault == ""  # ended by our stop: no fault


@pytest.mark.parametrize(
    ("placement", "kinds"),
    [("project", {"project"}), ("management", {"management"}), ("both", {"project", "management"})],
)
def test_networks_joined_per_placement_with_addresses_recorded(driver, spec, engine, project, placement, kinds):
    info = _create(driver, spec(network_placement=placement))
    assert set(info.addresses) == kinds
    assert all(len(ips) == 1 for ips in info.addresses.values())

    names = {"project": project_network(project), "management": MANAGEMENT_NETWORK}
    joined = engine.api.inspect_container(info.backend_id)["NetworkSettings"]["Networks"]
    assert set(joined) == {names[kind] for kind in kinds}
    for kind in kinds:
        network = engine.networks.get(names[kind])
        assert network.attrs["Labels"]["adminvms"] == "1"
        assert network.attrs["Driver"] == "bridge"
        subnet = ipaddress.ip_network(network.attrs["IPAM"]["Config"][0]["Subnet"])
        assert ipaddress.ip_address(info.addresses[kind][0]) in subnet
    assert driver.get(info.backend_id).addresses == info.addresses


def test_projects_get_separate_networks_that_do_not_reach_each_other(driver, spec, project, engine):
    other = f"dkt-{uuid.uuid4().hex[:10]}"
    try:
        mine, neighbour = _create(driver, spec()), _create(driver, spec())
        theirs = _create(driver, spec(project=other))
        assert engine.networks.get(project_network(project)).id != engine.networks.get(project_network(other)).id

        def ping(source, target) -> int:
            command = ["ping", "-c", "1", "-W", "1", target.addresses["project"][0]]
            return engine.containers.get(source.backend_id).exec_run(command).exit_code

        assert ping(mine, neighbour) == 0
        assert ping(mine, theirs) != 0
    finally:
        for container in engine.containers.list(all=True, sparse=True, filters={"label": f"adminvms.project={other}"}):
            container.remove(force=True)
        engine.networks.get(project_network(other)).remove()


def test_labels_and_name(driver, spec, project, engine):
    server_spec = spec(category="vsa", metadata={"role": "storage"})
    info = _create(driver, server_spec)
    container = engine.containers.get(info.backend_id)
    assert container.name == container_name(server_spec.instance_id)
    labels = container.labels
    assert labels["adminvms"] == "1"
    assert labels["adminvms.instance"] == server_spec.instance_id
    assert labels["adminvms.category"] == "vsa"
    assert labels["adminvms.project"] == project
    assert labels["adminvms.meta.role"] == "storage"
    assert info.instance_id == server_spec.instance_id
    assert info.locked  # managed: only the provider reaches the engine
    assert not _create(driver, spec(managed=False)).locked


def test_create_twice_returns_the_same_container(driver, spec, engine):
    server_spec = spec()
    first = _create(driver, server_spec)
    second = DockerDriver().create(server_spec)  # a retried task, maybe in another worker
    assert second.backend_id == first.backend_id
    found = engine.containers.list(all=True, filters={"label": f"adminvms.instance={server_spec.instance_id}"})
    assert [c.id for c in found] == [first.backend_id]


def test_create_after_a_crash_between_create_and_start_finishes_the_container(driver, spec, engine, monkeypatch):
    server_spec = spec(network_placement="both")

    def die(*args, **kwargs):
        raise SystemExit("worker killed")

    crashing = DockerDriver()
    monkeypatch.setattr(crashing, "_converge", die)
    with pytest.raises(SystemExit):
        crashing.create(server_spec)  # the container exists, never started, on one network only
    [made] = engine.containers.list(all=True, filters={"label": f"adminvms.instance={server_spec.instance_id}"})
    assert made.status == "created"

    info = driver.create(server_spec)
    assert info.backend_id == made.id
    assert info.status == ServerStatus.ACTIVE
    assert set(info.addresses) == {"project", "management"}
    found = engine.containers.list(all=True, filters={"label": f"adminvms.instance={server_spec.instance_id}"})
    assert len(found) == 1


def _concurrently(count: int, work) -> tuple[list, list]:
    """Run ``work(n)`` in ``count`` threads at once: (results, DriverErrors), one entry per thread.

    Anything else a thread raises (an SDK exception, an assertion) is raised here, so it fails the
    test instead of leaving a thread's result out."""
    barrier = threading.Barrier(count)
    results, errors, unexpected = [], [], []

    def run(n: int):
        try:
            barrier.wait(timeout=60)
            results.append(work(n))
        except DriverError as exc:  # the caller's assertion shows it
            errors.append(exc)
        except BaseException as exc:
            unexpected.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a thread is still running after 120 s"
    if unexpected:
        raise BaseExceptionGroup("a concurrent call raised something else than a DriverError", unexpected)
    return results, errors


def _create_retrying(server_spec: ServerSpec):
    """What the launch task does: BackendUnavailable is retried (here at once)."""
    for _ in range(4):
        try:
            return DockerDriver().create(server_spec)
        except BackendUnavailable:
            continue
    return DockerDriver().create(server_spec)


def test_concurrent_creates_of_one_instance_make_one_container_and_one_network(spec, engine, project):
    server_spec = spec(network_placement="both")
    results, errors = _concurrently(3, lambda n: _create_retrying(server_spec).backend_id)
    assert errors == []
    assert len(results) == 3 and len(set(results)) == 1
    assert len(engine.containers.list(all=True, filters={"label": f"adminvms.instance={server_spec.instance_id}"})) == 1
    # The engine's duplicate check races; the racers agreed on one project network and removed their twins.
    assert [n.name for n in engine.networks.list(names=[project_network(project)])] == [project_network(project)]


def test_concurrent_first_launches_in_a_project_share_one_network(spec, engine, project):
    specs = [spec(network_placement="both") for _ in range(3)]
    results, errors = _concurrently(3, lambda n: _create_retrying(specs[n]))
    assert errors == []
    assert len(results) == 3 and {info.status for info in results} == {ServerStatus.ACTIVE}
    assert len({info.backend_id for info in results}) == 3
    [network] = engine.networks.list(names=[project_network(project)])
    network.reload()
    assert {c.id for c in network.containers} == {info.backend_id for info in results}


# --- generations, spares and probes (heal, rollout, spare pools) --------------------------------


def _by_instance(engine, instance_id: str) -> dict[str, str]:
    """Container name → id of every container labelled with this instance."""
    found = engine.containers.list(all=True, filters={"label": f"adminvms.instance={instance_id}"})
    return {c.name: c.id for c in found}


def test_each_generation_is_a_container_of_its_own(driver, spec, engine):
    first = spec()
    replacement = replace(first, generation=1)
    old, new = _create(driver, first), _create(driver, replacement)
    assert old.backend_id != new.backend_id
    assert _by_instance(engine, first.instance_id) == {
        container_name(first.instance_id): old.backend_id,
        f"adminvms-{first.instance_id}-1": new.backend_id,
    }
    assert "adminvms.generation" not in engine.containers.get(old.backend_id).labels
    assert engine.containers.get(new.backend_id).labels["adminvms.generation"] == "1"
    assert {old.instance_id, new.instance_id} == {first.instance_id}
    # Idempotent per generation: a retried create finds its own generation's container.
    assert driver.create(replacement).backend_id == new.backend_id
    assert driver.create(first).backend_id == old.backend_id
    assert driver.find(first.instance_id).backend_id == old.backend_id
    assert driver.find(first.instance_id, 1).backend_id == new.backend_id
    assert driver.find(first.instance_id, 2) is None
    # The heal's last step: the old one goes, the new one stays.
    driver.delete(old.backend_id)
    assert driver.find(first.instance_id) is None
    assert driver.find(first.instance_id, 1).status == ServerStatus.ACTIVE


def test_concurrent_creates_of_a_replacement_make_one_container_beside_the_old_one(driver, spec, engine):
    first = spec(network_placement="both")
    old = _create(driver, first)
    replacement = replace(first, generation=1)
    # Three deliveries race: one makes it, the others meet its name (409) and must find it, never the old one.
    results, errors = _concurrently(3, lambda n: _create_retrying(replacement).backend_id)
    assert errors == []
    assert len(set(results)) == 1 and results[0] != old.backend_id
    assert set(_by_instance(engine, first.instance_id).values()) == {old.backend_id, results[0]}


def test_assign_puts_a_spare_on_the_project_network(driver, spec, engine, project):
    spare = spec(network_placement="management", name="spare-x", image=APPLIANCE, gui_port=8080)
    made = _create(driver, spare)
    assert set(made.addresses) == {"management"}
    launch = replace(spare, name="edge", network_placement="both")
    assigned = driver.assign(made.backend_id, launch)
    assert assigned.backend_id == made.backend_id and assigned.status == ServerStatus.ACTIVE
    assert set(assigned.addresses) == {"project", "management"}
    assert assigned.addresses["management"] == made.addresses["management"]
    joined = engine.api.inspect_container(made.backend_id)["NetworkSettings"]["Networks"]
    assert set(joined) == {project_network(project), MANAGEMENT_NETWORK}
    assert driver.assign(made.backend_id, launch) == driver.get(made.backend_id)  # twice: nothing changes
    # Labels are fixed at creation: the spare's stay (the row holds the instance's name).
    assert engine.containers.get(made.backend_id).labels["adminvms.name"] == "spare-x"
    # A management-only launch needs no project network.
    other = _create(driver, spec(network_placement="management"))
    assert set(
        driver.assign(other.backend_id, spec(instance_id=other.instance_id, network_placement="management")).addresses
    ) == {"management"}
    with pytest.raises(DriverError, match="another instance"):
        driver.assign(made.backend_id, spec(network_placement="both"))
    with pytest.raises(ServerNotFound):
        driver.assign("0" * 64, launch)


def test_the_management_network_is_not_internal_and_probes_reach_the_appliance(driver, spec, engine):
    info = _create(driver, spec(image=APPLIANCE, gui_port=8080, network_placement="both"))
    assert engine.networks.get(MANAGEMENT_NETWORK).attrs["Internal"] is False
    _get_page(info.management_endpoint)  # its httpd listens

    def target(port: int, path: str = "/", addresses=None) -> ProbeTarget:
        return ProbeTarget(info.backend_id, addresses or info.addresses, port, path, timeout=2)

    assert driver.probe_many([target(8080)], parallel=2) == {info.backend_id: ""}
    # The management address is the one probed, never the tenant's network.
    tenant_only = target(8080, addresses={"project": info.addresses["project"]})
    assert "no management address" in driver.probe_many([tenant_only], parallel=1)[info.backend_id]
    [refused] = driver.probe_many([target(8081)], parallel=1).values()
    assert "port 8081" in refused and "refused" in refused
    [missing] = driver.probe_many([target(8080, "/no/such/page")], parallel=1).values()
    assert "answered 404" in missing


def test_a_remote_engine_is_probed_through_the_published_gui_port(driver, spec, monkeypatch):
    info = _create(driver, spec(image=APPLIANCE, gui_port=8080, network_placement="both"))
    quiet = _create(driver, spec())  # no GUI port: nothing published
    _get_page(info.management_endpoint)
    monkeypatch.setattr(docker_driver, "_engine_is_remote", lambda: True)
    unreachable = {"management": ["192.0.2.1"]}  # TEST-NET-1: the container addresses are out of reach
    results = driver.probe_many(
        [
            ProbeTarget(info.backend_id, unreachable, 8080, "/", timeout=2),
            ProbeTarget(quiet.backend_id, unreachable, 8080, "/", timeout=2),
        ],
        parallel=2,
    )
    assert results[info.backend_id] == ""
    assert "Port 8080 is not published on the remote Docker host" in results[quiet.backend_id]


@pytest.mark.parametrize(
    ("docker_host", "remote"),
    [
        ("", False),
        ("unix:///var/run/docker.sock", False),
        ("tcp://127.0.0.1:2375", False),
        ("tcp://docker.example.net:2376", True),
        ("ssh://ops@docker.example.net", True),
    ],
)
def test_which_engines_are_remote(monkeypatch, docker_host, remote):
    monkeypatch.setenv("DOCKER_HOST", docker_host)
    assert docker_driver._engine_is_remote() is remote


def test_gui_port_published_on_loopback_serves_the_page(driver, spec, engine):
    info = _create(driver, spec(image=APPLIANCE, gui_port=8080, network_placement="both"))
    host, port = info.management_endpoint.rsplit(":", 1)
    assert host == "127.0.0.1" and int(port) > 0
    bindings = engine.api.inspect_container(info.backend_id)["HostConfig"]["PortBindings"]
    assert bindings == {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}  # an ephemeral port
    assert GUI_TEXT in _get_page(info.management_endpoint)

    # A stopped container publishes nothing; started again it gets a (maybe new) port, reported by get.
    driver.stop(info.backend_id)
    assert driver.get(info.backend_id).management_endpoint == ""
    driver.start(info.backend_id)
    assert GUI_TEXT in _get_page(driver.get(info.backend_id).management_endpoint)
    listed = {s.backend_id: s for s in driver.list_servers()}
    assert listed[info.backend_id].management_endpoint == driver.get(info.backend_id).management_endpoint


def test_publish_host_is_configurable(driver, spec, settings):
    settings.ADMINVMS = {**settings.ADMINVMS, "DOCKER_PUBLISH_HOST": "127.0.0.2"}
    info = _create(driver, spec(image=APPLIANCE, gui_port=8080))
    assert info.management_endpoint.startswith("127.0.0.2:")
    assert GUI_TEXT in _get_page(info.management_endpoint)


def test_no_gui_port_publishes_nothing(driver, spec, engine):
    info = _create(driver, spec(image=APPLIANCE))
    assert info.management_endpoint == ""
    assert not engine.api.inspect_container(info.backend_id)["HostConfig"]["PortBindings"]


def test_resource_limits_from_the_flavor(driver, spec, engine):
    info = _create(driver, spec(flavor=FlavorSpec("m1.small", 1, 192, 1)))
    host_config = engine.api.inspect_container(info.backend_id)["HostConfig"]
    assert host_config["NanoCpus"] == 1_000_000_000
    assert host_config["Memory"] == 192 * 1024 * 1024
    assert host_config["Init"] is True


def test_more_vcpus_than_the_host_has_are_capped(driver, spec, engine):
    host_cpus = engine.info()["NCPU"]
    info = _create(driver, spec(flavor=FlavorSpec("huge", host_cpus + 62, 256, 1)))
    assert engine.api.inspect_container(info.backend_id)["HostConfig"]["NanoCpus"] == host_cpus * 1_000_000_000


def test_no_flavor_means_no_limits(driver, spec, engine):
    info = _create(driver, spec(flavor=None))
    host_config = engine.api.inspect_container(info.backend_id)["HostConfig"]
    assert (host_config["NanoCpus"], host_config["Memory"]) == (0, 0)


def test_missing_image_is_a_clear_driver_error(driver, spec, engine):
    server_spec = spec(image="adminvms/not-here:1")
    with pytest.raises(DriverError) as caught:
        driver.create(server_spec)
    assert not caught.value.transient
    assert "image 'adminvms/not-here:1' is not present on the Docker host" in str(caught.value)
    assert engine.containers.list(all=True, filters={"label": f"adminvms.instance={server_spec.instance_id}"}) == []


def test_a_crashing_container_reports_its_exit_code(driver, spec, engine, project):
    # Made behind the driver's back, with a command that fails at once.
    instance_id = str(uuid.uuid4())
    labels = {"adminvms": "1", "adminvms.instance": instance_id, "adminvms.project": project}
    container = engine.containers.run(BUSYBOX, ["sh", "-c", "exit 3"], detach=True, labels=labels)
    container.wait(timeout=10)
    info = driver.get(container.id)
    assert info.status == ServerStatus.STOPPED
    assert info.fault == "The container exited with code 3."
    assert {s.backend_id: s for s in driver.list_servers()}[container.id].fault == info.fault


def test_a_crash_looping_container_is_error(driver, engine, project):
    # Its process exits at once; the restart policy starts it again and again, each time later.
    labels = {"adminvms": "1", "adminvms.instance": str(uuid.uuid4()), "adminvms.project": project}
    container = engine.containers.run(
        BUSYBOX, ["sh", "-c", "exit 4"], detach=True, labels=labels, restart_policy={"Name": "unless-stopped"}
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and engine.api.inspect_container(container.id)["RestartCount"] < 2:
        time.sleep(0.1)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and engine.api.inspect_container(container.id)["State"]["Status"] != "restarting":
        time.sleep(0.05)
    info = driver.get(container.id)
    assert info.status == ServerStatus.ERROR
    assert info.fault == "The container keeps exiting with code 4; the engine restarts it."
    # The list summary says so too ("Restarting (4) …"), whenever it catches it between two runs.
    deadline, listed = time.monotonic() + 20, None
    while time.monotonic() < deadline and (listed is None or listed.status != ServerStatus.ERROR):
        listed = {s.backend_id: s for s in driver.list_servers()}[container.id]
    assert (listed.status, listed.fault) == (ServerStatus.ERROR, info.fault)


def test_a_container_the_engine_cannot_start_is_error(driver, engine, project):
    labels = {"adminvms": "1", "adminvms.instance": str(uuid.uuid4()), "adminvms.project": project}
    container = engine.containers.create(BUSYBOX, ["/no/such/program"], labels=labels)
    with pytest.raises(docker.errors.APIError):
        container.start()
    info = driver.get(container.id)
    assert info.status == ServerStatus.ERROR
    assert "/no/such/program" in info.fault


def test_vanished_container(driver, spec, engine):
    info = _create(driver, spec())
    engine.containers.get(info.backend_id).remove(force=True)  # behind our back
    with pytest.raises(ServerNotFound):
        driver.get(info.backend_id)
    assert info.backend_id not in {s.backend_id for s in driver.list_servers()}
    assert driver.find(info.instance_id) is None


def test_orphans_appear_in_list_servers(driver, spec):
    # A container stamped by us for which no database row exists.
    orphan = _create(driver, spec())
    listed = {s.backend_id: s for s in driver.list_servers()}
    assert listed[orphan.backend_id].instance_id == orphan.instance_id
    assert listed[orphan.backend_id].status == ServerStatus.ACTIVE
    assert listed[orphan.backend_id].addresses == orphan.addresses


def test_list_servers_is_one_call(driver, spec, engine):
    for _ in range(3):
        _create(driver, spec())
    driver.list_servers()  # the client exists now
    api = driver._api()
    calls = []
    real_send = api.send

    def counting_send(request, **kwargs):
        calls.append(request.url)
        return real_send(request, **kwargs)

    api.send = counting_send
    try:
        servers = driver.list_servers()
    finally:
        del api.send
    assert len(servers) >= 3
    assert len(calls) == 1, calls


def test_engine_down_is_backend_unavailable(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    down = DockerDriver()
    with pytest.raises(BackendUnavailable) as caught:
        down.list_servers()
    assert caught.value.transient
    assert "does not answer" in str(caught.value)
    with pytest.raises(BackendUnavailable):
        down.get("abc")


# --- through the service layer ------------------------------------------------------------------


@pytest.fixture
def docker_category(demo, settings, project, engine):
    """A dual-homed appliance category on the docker backend, and a fresh project for it."""
    from categories.models import Image, InstanceCategory
    from instances.drivers import registry
    from tenancy.models import Project

    settings.ADMINVMS = {**settings.ADMINVMS, "BACKENDS": ["sim", "docker"]}
    registry.reset()
    image = Image.objects.create(name="appliance-gui", kind="container", backend_id=APPLIANCE)
    category = InstanceCategory.objects.create(
        slug="dkt-appliance",
        name="Docker appliance",
        kind="container",
        management="appliance",
        user_operations=["launch", "reboot", "terminate", "appliance_gui"],
        network_placement="both",
        backend="docker",
        default_image=image,
        default_flavor=demo.flavors["m1.tiny"],
        gui_port=8080,
    )
    yield category, Project.objects.create(slug=project, name=project)
    registry.reset()


def _launch(services, run_tasks, user, **kwargs):
    """Launch one instance; its task runs eagerly to the end (as a worker would, without the broker)."""
    started = time.perf_counter()
    with run_tasks():
        [instance] = services.instance_launch(user=user, name="appliance", **kwargs)
    instance.refresh_from_db()
    if instance.status == "ACTIVE":
        TIMINGS["launch → ACTIVE (services, eager task)"].append(time.perf_counter() - started)
    return instance


def test_launch_and_terminate_through_the_services(demo, docker_category, run_tasks, engine):
    from instances import services

    category, project = docker_category
    instance = _launch(services, run_tasks, demo.admin, project=project, category=category)
    assert (instance.status, instance.fault, instance.task_state) == ("ACTIVE", "", "")
    assert instance.backend == "docker" and instance.backend_id
    assert set(instance.addresses) == {"project", "management"}
    assert instance.management_endpoint.startswith("127.0.0.1:")
    assert GUI_TEXT in _get_page(instance.management_endpoint)
    container = engine.containers.get(instance.backend_id)
    assert container.labels["adminvms.instance"] == str(instance.pk)
    assert container.attrs["HostConfig"]["Memory"] == demo.flavors["m1.tiny"].ram_mb * 1024 * 1024

    with run_tasks():
        services.instance_act(user=demo.admin, instance=instance, operation="reboot")
    instance.refresh_from_db()
    assert (instance.status, instance.task_state) == ("ACTIVE", "")
    assert GUI_TEXT in _get_page(instance.management_endpoint)  # the endpoint recorded after the restart

    with run_tasks():
        services.instance_act(user=demo.admin, instance=instance, operation="terminate")
    instance.refresh_from_db()
    assert (instance.status, instance.task_state) == ("DELETED", "")
    assert instance.deleted_at is not None
    with pytest.raises(docker.errors.NotFound):
        engine.containers.get(instance.backend_id)


def test_missing_image_ends_the_launch_in_error_with_a_clear_fault(demo, docker_category, run_tasks):
    from instances import services

    category, project = docker_category
    category.default_image.backend_id = "adminvms/not-here:1"
    category.default_image.save()
    instance = _launch(services, run_tasks, demo.admin, project=project, category=category)
    assert instance.status == "ERROR"
    assert "image 'adminvms/not-here:1' is not present on the Docker host" in instance.fault


def test_reconcile_marks_vanished_instances_error_and_reports_orphans(
    demo, docker_category, run_tasks, engine, driver, spec
):
    from instances import services

    category, project = docker_category
    instance = _launch(services, run_tasks, demo.admin, project=project, category=category)
    assert instance.status == "ACTIVE"
    orphan = driver.create(spec())  # stamped by us, no row
    engine.containers.get(instance.backend_id).remove(force=True)  # behind our back

    [run] = services.instances_reconcile(backends=["docker"])
    assert run.error == ""
    instance.refresh_from_db()
    assert instance.status == "ERROR"
    assert "vanished" in instance.fault
    assert str(instance.pk) in run.vanished
    assert orphan.instance_id in {o["instance_id"] for o in run.orphans}
    assert str(instance.pk) not in {o["instance_id"] for o in run.orphans}
