"""Health checks, auto-heal with its circuit breaker, spare pools and rollouts, on the simulated cloud.

Every step runs through the real services and the (eager) action task; the simulated cloud's
servers are the backend's state, which a test changes behind adminvms' back as an operator's
accident would (a killed process, a deleted server).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from categories.models import InstanceCategory
from instances import services
from instances.choices import ActionStatus, Health, RolloutStatus, Status
from instances.drivers.sim.models import SimServer
from instances.models import HealBreaker, Instance, InstanceAction
from tenancy.errors import Conflict, Forbidden, InvalidInput
from tests.factories import ImageFactory


@pytest.fixture
def fleet(demo, run_tasks, settings):
    """The vsa category health-checked and auto-healed on the sim; ``fleet.launch(n)`` → ACTIVE vsas."""
    settings.ADMINVMS = {
        **settings.ADMINVMS, "HEALTH_CHECK_RETRY": 0, "HEAL_BREAKER_SHARE": 0.2, "HEAL_BREAKER_MIN": 2,
        "BUILD_RATE_LIMIT": 50,
    }  # fmt: skip
    vsa = demo.categories["vsa"]
    vsa.backend, vsa.health_check_port, vsa.health_check_path = "sim", 8080, "/health"
    vsa.health_check_threshold, vsa.auto_heal, vsa.max_instances = 2, True, None
    vsa.health_check_grace = 0
    vsa.save()

    class Fleet:
        category = vsa
        admin = demo.admin
        tasks = staticmethod(run_tasks)

        @staticmethod
        def launch(n, *, name="vsa", user=None, project=None, category=None):
            with run_tasks():
                made = services.instance_launch(
                    user=user or demo.admin, name=name, project=project or demo.acme, category=category or vsa,
                    count=n,
                )  # fmt: skip
            for inst in made:
                inst.refresh_from_db()
            return made

        @staticmethod
        def tick():
            """One beat: probes, then the fleet pass, its actions run to the end."""
            services.health_check()
            with run_tasks():
                return services.fleet_run()

        @staticmethod
        def kill(*instances):
            SimServer.objects.filter(pk__in=[i.backend_id for i in instances]).update(answers_probes=False)

    return Fleet


def _fresh(inst) -> Instance:
    return Instance.objects.get(pk=inst.pk)


def test_probes_turn_an_instance_failing_then_unhealthy_then_healthy_again(fleet):
    fleet.category.auto_heal = False
    fleet.category.save()
    [vsa] = fleet.launch(1)
    services.health_check()
    assert _fresh(vsa).health == Health.HEALTHY
    fleet.kill(vsa)
    services.health_check()
    inst = _fresh(vsa)
    assert (inst.health, inst.health_failures) == (Health.FAILING, 1)
    assert "Connection refused" in inst.health_error
    services.health_check()
    inst = _fresh(vsa)
    assert (inst.health, inst.health_failures) == (Health.UNHEALTHY, 2)
    failing_since = inst.health_since
    services.health_check()
    assert _fresh(vsa).health_since == failing_since  # the verdict holds since it turned
    SimServer.objects.filter(pk=vsa.backend_id).update(answers_probes=True)
    services.health_check()
    inst = _fresh(vsa)
    assert (inst.health, inst.health_failures, inst.health_error) == (Health.HEALTHY, 0, "")
    history = list(inst.events.filter(event__startswith="health_").values_list("event", flat=True))
    assert history == ["health_failing", "health_unhealthy", "health_recovered"]
    # Without auto-heal nothing was replaced.
    assert inst.backend_id == vsa.backend_id and not inst.actions.filter(action="heal").exists()


def test_an_unhealthy_instance_is_healed_onto_a_new_server_keeping_its_id_and_name(fleet):
    [vsa, other] = fleet.launch(2)
    old_server = vsa.backend_id
    fleet.kill(vsa)
    fleet.tick()
    report = fleet.tick()
    assert report.heals == 1
    inst = _fresh(vsa)
    assert (inst.pk, inst.name, inst.status, inst.task_state) == (vsa.pk, vsa.name, Status.ACTIVE, "")
    assert inst.backend_id != old_server and inst.generation == 1
    assert inst.health == Health.HEALTHY
    assert not SimServer.objects.filter(pk=old_server).exists()
    new = SimServer.objects.get(pk=inst.backend_id)
    assert (new.instance_uuid, new.generation, new.locked) == (vsa.pk, 1, True)
    heal = inst.actions.get(action="heal")
    assert heal.status == ActionStatus.SUCCEEDED and heal.requested_by is None
    steps = list(heal.events.values_list("event", flat=True))
    assert steps == ["requested", "spawning", "locked", "moved", "old_server_deleted", "finished"]
    assert _fresh(other).backend_id == other.backend_id  # the healthy one untouched


def test_a_server_deleted_behind_our_back_is_healed_after_reconcile(fleet):
    [vsa, *_rest] = fleet.launch(5)
    SimServer.objects.filter(pk=vsa.backend_id).delete()
    services.instances_reconcile(backends=["sim"])
    inst = _fresh(vsa)
    assert (inst.status, inst.health) == (Status.ERROR, Health.UNHEALTHY)
    fleet.tick()
    inst = _fresh(vsa)
    assert (inst.status, inst.fault, inst.generation) == (Status.ACTIVE, "", 1)
    assert SimServer.objects.filter(pk=inst.backend_id, instance_uuid=vsa.pk).exists()


def test_the_breaker_opens_when_many_turn_unhealthy_at_once_and_nothing_is_replaced(fleet, demo):
    fleet_of_five = fleet.launch(5)
    servers = {i.pk: i.backend_id for i in fleet_of_five}
    fleet.kill(*fleet_of_five[:3])
    fleet.tick()
    report = fleet.tick()
    assert report.heals == 0 and report.heals_paused == 3
    assert {b.scope + ":" + b.key for b in services.open_breakers()} == {"category:vsa", "backend:sim"}
    breaker = HealBreaker.objects.get(scope="category")
    assert (breaker.unhealthy, breaker.total) == (3, 5)
    assert "3 of 5" in breaker.reason
    assert {i.pk: i.backend_id for i in Instance.objects.filter(pk__in=servers)} == servers
    assert not InstanceAction.objects.filter(action="heal").exists()
    # Members may not resume it; an admin resumes both, and the heals start.
    with pytest.raises(Forbidden):
        services.breaker_resume(user=demo.alice, breaker=breaker)
    for open_one in services.open_breakers():
        services.breaker_resume(user=demo.admin, breaker=open_one)
    with pytest.raises(Conflict):
        services.breaker_resume(user=demo.admin, breaker=breaker)
    report = fleet.tick()
    assert report.heals == 3 and not services.open_breakers().exists()
    assert Instance.objects.filter(pk__in=servers, generation=1, status=Status.ACTIVE).count() == 3


def test_one_unhealthy_instance_heals_even_in_a_small_fleet(fleet):
    [vsa, _other] = fleet.launch(2)  # one of two is 50%, but one is below HEAL_BREAKER_MIN
    fleet.kill(vsa)
    fleet.tick()
    assert fleet.tick().heals == 1
    assert not services.open_breakers().exists()


def test_heals_are_rate_limited_per_backend(fleet, settings):
    settings.ADMINVMS = {**settings.ADMINVMS, "BUILD_RATE_LIMIT": 1, "HEAL_BREAKER_SHARE": 1.0}
    made = fleet.launch(3)
    fleet.kill(*made[:2])
    fleet.tick()
    assert fleet.tick().heals == 1
    assert fleet.tick().heals == 0  # the minute's budget is spent
    assert Instance.objects.filter(health=Health.UNHEALTHY).count() == 1


def test_a_failed_heal_leaves_the_instance_as_it_was_and_is_not_retried_automatically(fleet, settings):
    [vsa, _other] = fleet.launch(2)
    fleet.kill(vsa)
    settings.ADMINVMS = {**settings.ADMINVMS, "SIM_ERROR_RATE": 1.0}  # every boot fails now
    fleet.tick()
    fleet.tick()
    inst = _fresh(vsa)
    heal = inst.actions.get(action="heal")
    assert heal.status == ActionStatus.FAILED and "replacement failed" in heal.message
    assert (inst.status, inst.task_state, inst.backend_id, inst.generation) == (
        Status.ACTIVE, "", vsa.backend_id, 0,
    )  # fmt: skip
    assert SimServer.objects.filter(instance_uuid=vsa.pk).count() == 1  # the failed replacement deleted
    settings.ADMINVMS = {**settings.ADMINVMS, "SIM_ERROR_RATE": 0.0}
    assert fleet.tick().heals == 0
    # An admin heals it by hand.
    with fleet.tasks():
        services.instance_act(user=fleet.admin, instance=inst, operation="heal")
    assert _fresh(vsa).generation == 2  # generation 1 was the failed replacement's


# --- spare pools ----------------------------------------------------------------------------


@pytest.fixture
def pool(demo, fleet, settings):
    settings.ADMINVMS = {**settings.ADMINVMS, "SIM_HOSTS": 2}
    lb = demo.categories["lb"]
    lb.backend, lb.spare_pool_size = "sim", 2
    lb.full_clean()
    lb.save()
    return lb


def test_spare_pools_serve_managed_categories_on_the_management_network_only(demo):
    standard, vsa = demo.categories["standard"], demo.categories["vsa"]
    standard.spare_pool_size = 1
    with pytest.raises(Exception, match="provider-managed and appliance"):
        standard.full_clean()
    vsa.spare_pool_size, vsa.network_placement = 1, "project"
    with pytest.raises(Exception, match="management network"):
        vsa.full_clean()


def test_a_launch_takes_a_ready_spare_and_the_pool_refills(fleet, pool, demo):
    report = fleet.tick()
    assert report.spares_launched == 2
    fleet.tick()
    spares = list(Instance.objects.filter(is_spare=True, category=pool, status=Status.ACTIVE))
    assert len(spares) == 2 and {s.project.slug for s in spares} == {"adminvms-spares"}
    assert {s.host for s in spares} == {"sim-host-1", "sim-host-2"}  # spread by the pool's group
    assert all(set(s.addresses) == {"management"} for s in spares)
    # Members never see spares; the quota does not count them.
    assert not Instance.objects.visible_to(demo.alice).filter(is_spare=True).exists()
    [lb] = fleet.launch(1, name="edge", category=pool)
    assert lb.pk in {s.pk for s in spares}
    assert (lb.name, lb.project, lb.is_spare, lb.status) == ("edge", demo.acme, False, Status.ACTIVE)
    assert set(lb.addresses) == {"project", "management"}
    spare_launch, launch = lb.actions.filter(action="launch").order_by("created_at")
    assert (spare_launch.params, spare_launch.requested_by) == ({"spare": True}, None)
    assert (launch.params, launch.status, launch.requested_by) == ({"from_pool": True}, "succeeded", demo.admin)
    assert "assigned" in set(launch.events.values_list("event", flat=True))
    server = SimServer.objects.get(pk=lb.backend_id)
    assert (server.name, server.project_ref, server.locked) == ("edge", "acme", True)
    assert lb.metadata["adminvms_project"] == "acme"
    fleet.tick()
    assert Instance.objects.filter(is_spare=True, category=pool).exclude(status=Status.DELETED).count() == 2


def test_spares_keep_hard_anti_affinity_for_the_project(fleet, pool, demo):
    fleet.tick()
    fleet.tick()
    first, second = fleet.launch(1, name="a", category=pool)[0], fleet.launch(1, name="b", category=pool)[0]
    assert first.host != second.host
    assert first.actions.filter(action="launch", params__from_pool=True).exists()
    assert second.actions.filter(action="launch", params__from_pool=True).exists()
    # Two hosts, two members: a third launch (cold, the pool is refilling) has no valid host,
    # although the spares it took are outside the project's server group.
    InstanceCategory.objects.filter(pk=pool.pk).update(spare_pool_size=0)
    pool.refresh_from_db()
    [third] = fleet.launch(1, name="c", category=pool)
    assert third.status == Status.ERROR and "No valid host" in third.fault


def test_a_spare_must_fit_the_launch_or_the_launch_is_cold(fleet, pool, demo):
    fleet.tick()
    fleet.tick()
    [small] = fleet.launch(1, name="small", category=pool)  # the default flavor and image: from the pool
    assert small.actions.filter(action="launch", params__from_pool=True).exists()
    with fleet.tasks():
        [cold] = services.instance_launch(
            user=demo.admin, name="cold", project=demo.acme, category=pool, flavor=demo.flavors["m1.large"]
        )
    assert not cold.actions.get(action="launch").params


# --- rollouts -------------------------------------------------------------------------------


@pytest.fixture
def five(fleet, demo):
    fleet.category.health_check_port = None
    fleet.category.save()
    made = fleet.launch(5)
    return made


def test_a_rollout_moves_the_fleet_to_a_new_image_in_batches(fleet, five, demo):
    new = ImageFactory(name="vsa-2.0", kind="vm", tags=["vsa"])
    rollout = services.rollout_start(user=demo.admin, category=fleet.category, batch_size=2)
    assert (rollout.image, rollout.total) == (new, 5)
    assert fleet.tick().replacements == 2
    assert Instance.objects.filter(category=fleet.category, image=new).count() == 2
    assert fleet.tick().replacements == 2
    assert fleet.tick().replacements == 1
    fleet.tick()
    rollout.refresh_from_db()
    assert rollout.status == RolloutStatus.SUCCEEDED, rollout.message
    assert services.rollout_progress(rollout) == {"succeeded": 5, "failed": 0, "running": 0}
    for inst in Instance.objects.filter(pk__in=[i.pk for i in five]):
        assert (inst.image, inst.status, inst.generation) == (new, Status.ACTIVE, 1)
        assert SimServer.objects.get(pk=inst.backend_id).image_ref == new.reference


def test_a_failing_image_stops_the_rollout_after_its_first_batch(fleet, five, demo):
    old = five[0].image
    broken = ImageFactory(name="fail-boot", kind="vm", tags=["vsa"])
    rollout = services.rollout_start(user=demo.admin, category=fleet.category, image=broken, batch_size=2)
    fleet.tick()
    fleet.tick()
    rollout.refresh_from_db()
    assert rollout.status == RolloutStatus.FAILED and "stopped" in rollout.message
    assert services.rollout_progress(rollout)["failed"] >= 1
    assert rollout.actions.count() == 2  # the first batch only
    for inst in Instance.objects.filter(pk__in=[i.pk for i in five]):
        assert (inst.image, inst.status, inst.task_state, inst.generation) == (old, Status.ACTIVE, "", 0)
    assert SimServer.objects.filter(image_ref=broken.reference).count() == 0  # failed replacements deleted


def test_a_replacement_that_fails_its_health_check_stops_the_rollout(fleet, demo):
    made = fleet.launch(3)
    sick = ImageFactory(name="fail-health", kind="vm", tags=["vsa"])
    rollout = services.rollout_start(user=demo.admin, category=fleet.category, image=sick)
    fleet.tick()
    fleet.tick()
    rollout.refresh_from_db()
    assert rollout.status == RolloutStatus.FAILED
    failed = rollout.actions.get()
    assert "health check" in failed.message
    assert all(_fresh(i).image == made[0].image for i in made)


def test_rollouts_pause_resume_abort_and_one_at_a_time(fleet, five, demo):
    new = ImageFactory(name="vsa-3", kind="vm", tags=["vsa"])
    rollout = services.rollout_start(user=demo.admin, category=fleet.category, image=new, batch_size=1)
    with pytest.raises(Conflict):
        services.rollout_start(user=demo.admin, category=fleet.category, image=new)
    with pytest.raises(Forbidden):
        services.rollout_start(user=demo.alice, category=fleet.category, image=new)
    with pytest.raises(InvalidInput):
        services.rollout_start(user=demo.admin, category=demo.categories["cache"], image=new)
    services.rollout_set(user=demo.admin, rollout=rollout, verb="pause")
    assert fleet.tick().replacements == 0
    services.rollout_set(user=demo.admin, rollout=rollout, verb="resume")
    assert fleet.tick().replacements == 1
    services.rollout_set(user=demo.admin, rollout=rollout, verb="abort")
    assert fleet.tick().replacements == 0
    with pytest.raises(Conflict):
        services.rollout_set(user=demo.admin, rollout=rollout, verb="resume")
    assert Instance.objects.filter(category=fleet.category, image=new).count() == 1


def test_admins_only_heal_by_hand(fleet, demo):
    [vsa] = fleet.launch(1, user=demo.alice)
    with pytest.raises(Forbidden):
        services.instance_act(user=demo.alice, instance=vsa, operation="heal")
    assert get_user_model().objects.get(username="admin").is_staff


def test_a_server_left_behind_by_a_replacement_is_reported_as_an_orphan(fleet):
    [vsa] = fleet.launch(1)
    left = SimServer.objects.create(instance_uuid=vsa.pk, generation=0, name="old", kind="vm", status="ACTIVE")
    [run] = services.instances_reconcile(backends=["sim"])
    assert [o["backend_id"] for o in run.orphans] == [str(left.pk)]


def test_a_health_check_probes_the_management_network_only(demo):
    standard = demo.categories["standard"]  # placed on project networks
    standard.health_check_port, standard.health_check_path = 80, "/"
    with pytest.raises(Exception, match="probes the management network"):
        standard.full_clean()
    vsa = demo.categories["vsa"]
    vsa.health_check_path = "/health check"
    with pytest.raises(Exception, match="spaces"):
        vsa.full_clean()


def test_failed_probes_count_only_after_the_grace(fleet, settings):
    fleet.category.health_check_grace = 3600
    fleet.category.save()
    [vsa] = fleet.launch(1)
    fleet.kill(vsa)
    assert services.health_check().probed == 0  # booted just now: still starting
    Instance.objects.filter(pk=vsa.pk).update(launched_at=timezone.now() - timedelta(hours=2))
    assert services.health_check().failing == 1
    # A replacement that does not answer yet is probed again, not failed, within the grace.
    sick = ImageFactory(name="fail-health", kind="vm", tags=["vsa"])
    services.rollout_start(user=fleet.admin, category=fleet.category, image=sick)
    services.fleet_run()  # opens the replacement; its task is not run here: the test steps it
    replace = InstanceAction.objects.get(action="replace")
    for _ in range(5):
        assert services.action_step(action_id=replace.pk) is not None
    replace.refresh_from_db()
    assert replace.status == ActionStatus.RUNNING
    assert "active_at" in replace.params and "probe_failures" not in replace.params


def test_a_replacement_never_reuses_a_generation(fleet, settings):
    [vsa, _other] = fleet.launch(2)
    # A failed replacement of generation 1 that could not be deleted stays behind.
    left = SimServer.objects.create(instance_uuid=vsa.pk, generation=1, name="left", kind="vm", status="ACTIVE")
    InstanceAction.objects.create(
        instance=vsa, action="heal", status=ActionStatus.FAILED, params={"generation": 1},
        deadline=timezone.now(),
    )  # fmt: skip
    with fleet.tasks():
        services.instance_act(user=fleet.admin, instance=_fresh(vsa), operation="heal")
    inst = _fresh(vsa)
    assert inst.generation == 2 and inst.backend_id != str(left.pk)


def test_an_instance_that_breaks_again_within_the_window_waits_for_an_admin(fleet):
    [vsa, _other] = fleet.launch(2)
    fleet.kill(vsa)
    fleet.tick()
    assert fleet.tick().heals == 1
    fleet.kill(_fresh(vsa))  # its new server breaks too
    fleet.tick()
    assert fleet.tick().heals == 0
    assert _fresh(vsa).health == Health.UNHEALTHY and _fresh(vsa).generation == 1


def test_a_pool_set_to_zero_or_a_deactivated_category_retires_its_spares(fleet, pool):
    fleet.tick()
    fleet.tick()
    assert Instance.objects.filter(is_spare=True, status=Status.ACTIVE).count() == 2
    InstanceCategory.objects.filter(pk=pool.pk).update(spare_pool_size=1)
    assert fleet.tick().spares_retired == 1
    InstanceCategory.objects.filter(pk=pool.pk).update(is_active=False)
    assert fleet.tick().spares_retired == 1
    assert not Instance.objects.filter(is_spare=True).exclude(status=Status.DELETED).exists()
    assert not SimServer.objects.filter(project_ref="adminvms-spares").exists()
