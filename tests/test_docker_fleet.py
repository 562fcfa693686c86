"""Health checks, auto-heal, its circuit breaker, rollouts and spare pools with real containers.

The appliance's images (tests/fleet_images.py) run httpd in the background while the container's
main process sleeps, so killing httpd behind adminvms' back leaves a running container whose
appliance no longer answers, as a crashed service inside a healthy VM would. Each serves its
version at ``/version`` (the health-check path) and the addresses the container started with at
``/whoami``, so a test sees which container answers.

Every test works in its own project and category; the containers of the category (spares and
replacements too) and the project's network are removed afterwards.
"""

from __future__ import annotations

import http.client
import uuid
from types import SimpleNamespace

import docker.errors
import pytest

from categories.models import Image, InstanceCategory
from instances import services
from instances.choices import ActionStatus, Health, RolloutStatus, Status
from instances.drivers import registry
from instances.drivers.docker import MANAGEMENT_NETWORK, container_name, project_network
from instances.models import Instance
from instances.tests import test_docker_driver as driver_tests
from tenancy.choices import Role
from tenancy.models import Membership, Project

from .conftest import wait_until
from .fleet_images import fleet_images as build_fleet_images

pytestmark = pytest.mark.docker
# The driver tests' fixtures: the engine (started, with the test images), and a fresh project slug whose
# containers and network go afterwards.
engine, project = driver_tests.engine, driver_tests.project
APPLIANCE, GUI_TEXT = driver_tests.APPLIANCE, driver_tests.GUI_TEXT.decode()

THRESHOLD = 2


@pytest.fixture(scope="module")
def fleet_images(engine):
    """Tag → image reference of the fleet's images (tests/fleet_images.py)."""
    return build_fleet_images(engine)


@pytest.fixture
def fleet(demo, settings, engine, project, fleet_images, run_tasks, gui_client):
    """A health-checked, auto-healed appliance category on docker, in a fresh project of alice's."""
    settings.ADMINVMS = {
        **settings.ADMINVMS, "BACKENDS": ["sim", "docker"], "BUILD_RATE_LIMIT": 100, "HEALTH_CHECK_TIMEOUT": 2,
        "HEAL_BREAKER_SHARE": 0.2, "HEAL_BREAKER_MIN": 2,
        # A replacement is probed as soon as the engine says it runs, and its httpd listens a few
        # milliseconds later (up to 10 ms measured on a loaded machine; the first probe failed 2 times
        # in 20): with 0 the THRESHOLD probes could all come too early. Half a second is ample and
        # keeps a replacement that never answers quick to fail.
        "HEALTH_CHECK_RETRY": 0.5,
    }  # fmt: skip
    registry.reset()
    slug = f"dkf-{uuid.uuid4().hex[:8]}"
    category = InstanceCategory.objects.create(
        slug=slug, name="Fleet appliance", kind="container", management="appliance", user_visible=True,
        user_operations=["launch", "reboot", "terminate", "appliance_gui"], network_placement="both",
        backend="docker", gui_port=8080, gui_path="/", default_flavor=demo.flavors["m1.tiny"],
        health_check_port=8080, health_check_path="/version", health_check_threshold=THRESHOLD, auto_heal=True,
        health_check_grace=0,
    )  # fmt: skip
    images = {tag: _image(category, reference) for tag, reference in fleet_images.items()}
    category.default_image = images["1"]
    category.full_clean()
    category.save()
    tenant = Project.objects.create(slug=project, name=project)
    Membership.objects.create(user=demo.alice, project=tenant, role=Role.MEMBER)

    def launch(count: int, *, user=None, name: str = "nas") -> list[Instance]:
        with run_tasks():
            made = services.instance_launch(
                user=user or demo.admin, name=name, project=tenant, category=category, count=count
            )
        made = [Instance.objects.get(pk=inst.pk) for inst in made]
        for inst in made:
            assert (inst.status, inst.fault) == (Status.ACTIVE, ""), inst.fault
            wait_until(lambda inst=inst: _get(inst, "/version")[0] == 200, 10, f"{inst.name} serves")
        return made

    def kill(*instances: Instance) -> None:
        """Kill the appliance's httpd behind adminvms' back; the container keeps running."""
        for inst in instances:
            assert engine.containers.get(inst.backend_id).exec_run(["killall", "httpd"]).exit_code == 0
        for inst in instances:
            wait_until(lambda inst=inst: _get(inst, "/version")[0] == 0, 10, f"{inst.name}'s httpd is gone")

    def probe_until_unhealthy() -> None:
        for _ in range(THRESHOLD):
            services.health_check(backends=["docker"])

    def tick():
        """One beat of the worker: the probes, then the fleet's pass with its actions run to the end."""
        services.health_check(backends=["docker"])
        with run_tasks():
            return services.fleet_run()

    yield SimpleNamespace(
        category=category, project=tenant, images=images, launch=launch, kill=kill, tick=tick,
        probe_until_unhealthy=probe_until_unhealthy, gui=lambda inst: gui_client(demo.alice, inst),
    )  # fmt: skip
    for container in engine.containers.list(all=True, sparse=True, filters={"label": f"adminvms.category={slug}"}):
        container.remove(force=True)
    registry.reset()


def _image(category: InstanceCategory, reference: str) -> Image:
    image = Image.objects.create(name=f"{category.slug}-{reference.rpartition(':')[2]}", kind="container",
                                 backend_id=reference)  # fmt: skip
    image.categories.set([category])
    return image


def _get(inst: Instance, path: str) -> tuple[int, str]:
    """GET ``path`` from the appliance at its recorded management address, as the health check does:
    (status, body), or (0, the error) when nothing answers."""
    conn = http.client.HTTPConnection(inst.addresses["management"][0], 8080, timeout=2)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read().decode()
    except OSError as exc:
        return 0, str(exc)
    finally:
        conn.close()


def _body(response) -> str:
    return b"".join(response.streaming_content).decode() if response.streaming else response.content.decode()


def _fresh(inst: Instance) -> Instance:
    return Instance.objects.get(pk=inst.pk)


def _networks(engine, backend_id: str) -> set[str]:
    return set(engine.api.inspect_container(backend_id)["NetworkSettings"]["Networks"])


def test_an_appliance_whose_service_died_is_healed_onto_a_new_container(fleet, engine, demo):
    [nas] = fleet.launch(1, user=demo.alice)
    assert _get(nas, "/version") == (200, "1\n")
    assert services.health_check(backends=["docker"]).healthy == 1
    assert _fresh(nas).health == Health.HEALTHY
    assert GUI_TEXT in _body(fleet.gui(nas).get("/"))

    fleet.kill(nas)
    services.health_check(backends=["docker"])
    assert _fresh(nas).health == Health.FAILING
    services.health_check(backends=["docker"])
    sick = _fresh(nas)
    assert (sick.health, sick.health_failures) == (Health.UNHEALTHY, THRESHOLD)
    assert "port 8080" in sick.health_error and "refused" in sick.health_error
    assert engine.containers.get(nas.backend_id).status == "running"  # the container runs; its appliance is dead

    report = fleet.tick()
    assert (report.heals, report.breakers_opened) == (1, [])
    healed = _fresh(nas)
    assert (healed.pk, healed.name, healed.status, healed.task_state) == (nas.pk, "nas", Status.ACTIVE, "")
    assert (healed.generation, healed.health) == (1, Health.HEALTHY)
    assert healed.backend_id != nas.backend_id and healed.management_endpoint != nas.management_endpoint
    container = engine.containers.get(healed.backend_id)
    assert container.name == container_name(str(nas.pk), 1)
    assert (container.labels["adminvms.instance"], container.labels["adminvms.generation"]) == (str(nas.pk), "1")
    assert _networks(engine, healed.backend_id) == {project_network(fleet.project.slug), MANAGEMENT_NETWORK}
    with pytest.raises(docker.errors.NotFound):
        engine.containers.get(nas.backend_id)
    heal = healed.actions.get(action="heal")
    assert heal.status == ActionStatus.SUCCEEDED
    assert list(heal.events.values_list("event", flat=True)) == [
        "requested", "spawning", "moved", "old_server_deleted", "finished",
    ]  # fmt: skip

    # Alice's GUI opens again, served by the new container (the addresses it started with).
    gui = fleet.gui(healed)
    assert GUI_TEXT in _body(gui.get("/"))
    whoami = _body(gui.get("/whoami"))
    assert f"inet {healed.addresses['management'][0]}/" in whoami
    assert f"inet {nas.addresses['management'][0]}/" not in whoami
    services.health_check(backends=["docker"])
    assert _fresh(nas).health == Health.HEALTHY


def test_the_breaker_stops_heals_when_many_containers_turn_unhealthy_at_once(fleet, engine):
    five = fleet.launch(5)
    containers = {inst.pk: inst.backend_id for inst in five}
    fleet.kill(*five[:3])
    fleet.probe_until_unhealthy()
    assert Instance.objects.filter(pk__in=containers, health=Health.UNHEALTHY).count() == 3

    report = fleet.tick()
    assert (report.heals, report.heals_paused) == (0, 3)
    assert {f"{b.scope}:{b.key}" for b in services.open_breakers()} == {
        f"category:{fleet.category.slug}", "backend:docker",
    }  # fmt: skip
    assert "3 of 5" in services.open_breakers().get(scope="category").reason
    # Nothing was replaced: the same five containers, all still running.
    assert {i.pk: i.backend_id for i in Instance.objects.filter(pk__in=containers)} == containers
    assert not Instance.objects.filter(pk__in=containers, generation__gt=0).exists()
    assert {engine.containers.get(c).status for c in containers.values()} == {"running"}
    listed = engine.containers.list(all=True, filters={"label": f"adminvms.category={fleet.category.slug}"})
    assert {c.id for c in listed} == set(containers.values())


def test_a_rollout_moves_the_fleet_to_a_new_image_in_batches_of_two(fleet, engine, demo):
    five = fleet.launch(5)
    old_containers = {inst.backend_id for inst in five}
    new = fleet.images["2"]
    rollout = services.rollout_start(user=demo.admin, category=fleet.category, image=new, batch_size=2)
    batches = []
    for _ in range(6):
        report = fleet.tick()
        rollout.refresh_from_db()
        if rollout.status != RolloutStatus.RUNNING:
            break
        batches.append(report.replacements)
    assert rollout.status == RolloutStatus.SUCCEEDED, rollout.message
    assert batches == [2, 2, 1]
    assert services.rollout_progress(rollout) == {"succeeded": 5, "failed": 0, "running": 0}
    for inst in Instance.objects.filter(pk__in=[i.pk for i in five]):
        assert (inst.image, inst.status, inst.generation, inst.health) == (new, Status.ACTIVE, 1, Health.HEALTHY)
        assert engine.containers.get(inst.backend_id).attrs["Config"]["Image"] == new.reference
        assert _get(inst, "/version") == (200, "2\n")  # the new version answers
    for old in old_containers:
        with pytest.raises(docker.errors.NotFound):
            engine.containers.get(old)
    # New launches follow the fleet.
    fleet.category.refresh_from_db()
    assert fleet.category.default_image == new


def test_a_rollout_to_an_image_that_never_answers_stops_after_its_first_batch(fleet, engine, demo):
    five = fleet.launch(5)
    before = {inst.pk: inst.backend_id for inst in five}
    mute = fleet.images["mute"]
    rollout = services.rollout_start(user=demo.admin, category=fleet.category, image=mute, batch_size=2)
    assert fleet.tick().replacements == 2
    fleet.tick()
    rollout.refresh_from_db()
    assert rollout.status == RolloutStatus.FAILED and "stopped" in rollout.message
    assert rollout.actions.count() == 2  # the first batch only
    for action in rollout.actions.all():
        assert action.status == ActionStatus.FAILED and "failed its health check" in action.message
    # Every instance keeps its image and its container, which still serves; the failed replacements are gone.
    for inst in Instance.objects.filter(pk__in=before):
        assert (inst.image, inst.status, inst.task_state, inst.generation) == (fleet.images["1"], Status.ACTIVE, "", 0)
        assert inst.backend_id == before[inst.pk]
        assert _get(inst, "/version") == (200, "1\n")
    listed = engine.containers.list(all=True, filters={"label": f"adminvms.category={fleet.category.slug}"})
    assert {c.id for c in listed} == set(before.values())


def test_a_launch_takes_a_spare_container_and_the_pool_refills(fleet, engine, demo):
    fleet.category.spare_pool_size = 2
    fleet.category.full_clean()
    fleet.category.save()
    assert fleet.tick().spares_launched == 2
    spares = list(Instance.objects.filter(is_spare=True, category=fleet.category))
    assert [s.status for s in spares] == [Status.ACTIVE, Status.ACTIVE]
    assert {s.project.slug for s in spares} == {"adminvms-spares"}
    for spare in spares:
        assert set(spare.addresses) == {"management"}
        assert _networks(engine, spare.backend_id) == {MANAGEMENT_NETWORK}
        wait_until(lambda spare=spare: _get(spare, "/version")[0] == 200, 10, "the spare serves")

    [nas] = fleet.launch(1, user=demo.alice, name="edge")
    assert nas.pk in {s.pk for s in spares}
    assert (nas.name, nas.project, nas.is_spare, nas.created_by) == ("edge", fleet.project, False, demo.alice)
    launch = nas.actions.filter(action="launch").latest("created_at")
    assert (launch.params, launch.status, launch.requested_by) == ({"from_pool": True}, "succeeded", demo.alice)
    assert "assigned" in set(launch.events.values_list("event", flat=True))
    assert set(nas.addresses) == {"project", "management"}
    assert _networks(engine, nas.backend_id) == {project_network(fleet.project.slug), MANAGEMENT_NETWORK}
    assert GUI_TEXT in _body(fleet.gui(nas).get("/"))  # alice's appliance, at once

    report = fleet.tick()
    assert report.spares_launched == 1
    refilled = Instance.objects.filter(is_spare=True, category=fleet.category, status=Status.ACTIVE)
    assert refilled.count() == 2 and nas.pk not in {s.pk for s in refilled}
