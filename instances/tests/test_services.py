"""The service layer: defaults, atomic claims, execution steps, reconcile, quota under parallel launches."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone

from categories.models import InstanceCategory
from instances import selectors, services
from instances.choices import ActionStatus, Status
from instances.drivers.base import ServerInfo, ServerStatus
from instances.drivers.sim.driver import NO_VALID_HOST
from instances.drivers.sim.models import SimServer
from instances.models import Instance, InstanceAction, InstanceEvent
from tenancy.errors import Conflict, Forbidden, InvalidInput, NotFound, QuotaExceeded
from tests.factories import ImageFactory


@pytest.fixture
def launched(demo, run_tasks):
    """``launched(user, **kwargs)`` → the instance, its launch run to the end by the (eager) task."""

    def make(user=None, **kwargs):
        kwargs.setdefault("name", "vm")
        with run_tasks():
            [instance] = services.instance_launch(user=user or demo.alice, **kwargs)
        instance.refresh_from_db()
        return instance

    return make


def _launch_action(instance) -> InstanceAction:
    return instance.actions.get(action="launch")


# --- defaults ------------------------------------------------------------------------------


def test_launch_fills_defaults_and_records_the_request(demo):
    [instance] = services.instance_launch(user=demo.alice, name=" web ")
    assert instance.name == "web"
    assert instance.category.slug == "standard"
    assert instance.project == demo.acme
    assert (instance.flavor.name, instance.image.name) == ("m1.small", "debian-12")
    assert (instance.status, instance.task_state, instance.backend) == ("BUILDING", "scheduling", "sim")
    assert instance.created_by == demo.alice
    assert instance.metadata == {
        "adminvms_instance": str(instance.pk),
        "adminvms_category": "standard",
        "adminvms_project": "acme",
    }
    action = _launch_action(instance)
    assert (action.status, action.requested_by) == (ActionStatus.PENDING, demo.alice)
    assert action.deadline > timezone.now()
    assert list(instance.events.values_list("event", flat=True)) == ["requested"]


def test_image_tag_picks_the_newest_active_image_of_the_right_kind(demo):
    vsa = demo.categories["vsa"]
    [first] = services.instance_launch(user=demo.alice, name="a", category=vsa)
    assert first.image.name == "vsa-appliance"

    newer = ImageFactory(name="vsa-appliance-2", tags=["vsa"])
    ImageFactory(name="vsa-retired", tags=["vsa"], is_active=False)  # newest, but inactive
    ImageFactory(name="vsa-sidecar", tags=["vsa"], kind="container")  # newest, but not a VM
    [second] = services.instance_launch(user=demo.alice, name="b", category=vsa)
    assert second.image == newer


def test_explicit_choices_are_kept_and_category_metadata_is_stamped(demo):
    InstanceCategory.objects.filter(slug="vsa").update(extra_metadata={"tier": "storage"})
    vsa = InstanceCategory.objects.get(slug="vsa")
    [instance] = services.instance_launch(
        user=demo.alice, name="s", category=vsa, flavor=demo.flavors["m1.large"], image=demo.images["vsa-appliance"]
    )
    assert instance.flavor.name == "m1.large"
    assert instance.metadata["tier"] == "storage"
    assert instance.metadata["adminvms_category"] == "vsa"


def test_category_without_default_flavor_needs_one(demo):
    InstanceCategory.objects.filter(slug="vsa").update(default_flavor=None)
    vsa = InstanceCategory.objects.get(slug="vsa")
    with pytest.raises(InvalidInput) as excinfo:
        services.instance_launch(user=demo.alice, name="s", category=vsa)
    assert excinfo.value.field == "flavor"
    [instance] = services.instance_launch(user=demo.alice, name="s", category=vsa, flavor=demo.flavors["m1.large"])
    assert instance.flavor.name == "m1.large"


def test_policy_is_enforced_by_the_service_itself(demo):
    standard = demo.categories["standard"]
    with pytest.raises(Forbidden):
        services.instance_launch(user=demo.rita, name="x", project=demo.acme)
    with pytest.raises(Forbidden):
        services.instance_launch(user=demo.alice, name="x", category=demo.categories["lb"])
    with pytest.raises(InvalidInput) as excinfo:
        services.instance_launch(user=demo.alice, name="x", category=standard, project=demo.globex)
    assert excinfo.value.field == "project"
    with pytest.raises(InvalidInput) as excinfo:
        services.instance_launch(user=demo.alice, name="x", category=demo.categories["cache"])
    assert excinfo.value.field == "category"
    assert not Instance.objects.exists()


def test_instance_get_visible(demo, launched):
    instance = launched(demo.bob)
    assert selectors.instance_get_visible(user=demo.bob, instance_id=instance.pk) == instance
    for instance_id in (instance.pk, "not-a-uuid", None, 42):
        with pytest.raises(NotFound):
            selectors.instance_get_visible(user=demo.alice, instance_id=instance_id)


# --- one action at a time -------------------------------------------------------------------


def test_action_claim_is_atomic(demo, launched):
    instance = launched()
    # Two requests that both read the instance before either claimed it.
    first, second = Instance.objects.get(pk=instance.pk), Instance.objects.get(pk=instance.pk)
    services.instance_act(user=demo.alice, instance=first, operation="reboot")
    with pytest.raises(Conflict):
        services.instance_act(user=demo.alice, instance=second, operation="stop")
    with pytest.raises(Conflict):
        services.instance_act(user=demo.admin, instance=Instance.objects.get(pk=instance.pk), operation="reboot")
    instance.refresh_from_db()
    assert (instance.status, instance.task_state) == ("REBOOTING", "rebooting")
    assert list(instance.actions.filter(status=ActionStatus.PENDING).values_list("action", flat=True)) == ["reboot"]


def test_actions_run_to_their_end_state(demo, launched, run_tasks):
    instance = launched()
    with run_tasks():
        services.instance_act(user=demo.alice, instance=instance, operation="stop")
    instance.refresh_from_db()
    assert (instance.status, instance.task_state) == ("STOPPED", "")
    with run_tasks():
        services.instance_act(user=demo.alice, instance=instance, operation="start")
    instance.refresh_from_db()
    assert (instance.status, instance.task_state) == ("ACTIVE", "")
    with run_tasks():
        services.instance_act(user=demo.alice, instance=instance, operation="terminate")
    instance.refresh_from_db()
    assert (instance.status, instance.task_state) == ("DELETED", "")
    assert instance.deleted_at is not None
    assert not instance.actions.filter(status__in=[ActionStatus.PENDING, ActionStatus.RUNNING]).exists()


# --- execution: idempotent, never stuck ---------------------------------------------------------


def test_action_step_twice_makes_one_server(demo):
    [instance] = services.instance_launch(user=demo.alice, name="web")
    action = _launch_action(instance)
    assert services.action_step(action_id=action.pk) is None
    assert services.action_step(action_id=action.pk) is None  # a duplicate delivery
    assert SimServer.objects.filter(instance_uuid=instance.pk).count() == 1
    instance.refresh_from_db()
    assert instance.status == "ACTIVE"
    assert instance.events.filter(event="finished").count() == 1


def test_retried_launch_after_a_lost_answer_finds_its_server(demo):
    [instance] = services.instance_launch(user=demo.alice, name="web")
    action = _launch_action(instance)
    services.action_step(action_id=action.pk)
    server = SimServer.objects.get(instance_uuid=instance.pk)
    # The worker died after the backend made the server, before anything was recorded.
    Instance.objects.filter(pk=instance.pk).update(backend_id="", host="", status="BUILDING", task_state="spawning")
    InstanceAction.objects.filter(pk=action.pk).update(status=ActionStatus.PENDING, finished_at=None)

    assert services.action_step(action_id=action.pk) is None
    assert list(SimServer.objects.values_list("pk", flat=True)) == [server.pk]
    instance.refresh_from_db()
    assert (instance.status, instance.backend_id, instance.host) == ("ACTIVE", str(server.pk), server.host)


def test_terminate_of_a_launch_that_never_recorded_its_server_deletes_it(demo, run_tasks):
    [instance] = services.instance_launch(user=demo.alice, name="web")
    services.action_step(action_id=_launch_action(instance).pk)
    Instance.objects.filter(pk=instance.pk).update(backend_id="")
    instance.refresh_from_db()
    with run_tasks():
        services.instance_act(user=demo.alice, instance=instance, operation="terminate")
    instance.refresh_from_db()
    assert instance.status == "DELETED"
    assert not SimServer.objects.exists()


def test_action_past_its_deadline_ends_in_error(demo):
    [instance] = services.instance_launch(user=demo.alice, name="web")
    action = _launch_action(instance)
    InstanceAction.objects.filter(pk=action.pk).update(deadline=timezone.now() - timedelta(seconds=1))
    assert services.action_step(action_id=action.pk) is None
    instance.refresh_from_db()
    assert (instance.status, instance.task_state) == ("ERROR", "")
    assert "did not finish" in instance.fault
    assert InstanceAction.objects.get(pk=action.pk).status == ActionStatus.FAILED


def test_action_on_a_vanished_server_ends_in_error(demo, launched, run_tasks):
    instance = launched()
    SimServer.objects.all().delete()
    with run_tasks():
        services.instance_act(user=demo.alice, instance=instance, operation="reboot")
    instance.refresh_from_db()
    assert (instance.status, instance.task_state) == ("ERROR", "")
    assert "vanished" in instance.fault


def test_action_step_of_an_unknown_action_does_nothing(demo):
    assert services.action_step(action_id=uuid.uuid4()) is None


def test_hard_anti_affinity_beyond_the_hosts_ends_in_error(demo, launched):
    lbs = [launched(demo.admin, name=f"lb-{n}", category=demo.categories["lb"], project=demo.acme) for n in range(4)]
    assert [lb.status for lb in lbs] == ["ACTIVE", "ACTIVE", "ACTIVE", "ERROR"]
    assert len({lb.host for lb in lbs[:3]}) == 3
    assert lbs[3].fault == NO_VALID_HOST


# --- abandoned actions and reconcile --------------------------------------------------------------


def test_actions_expire_ends_an_overdue_action_in_error(demo):
    [overdue] = services.instance_launch(user=demo.alice, name="lost")
    [recent] = services.instance_launch(user=demo.alice, name="slow")
    [fresh] = services.instance_launch(user=demo.alice, name="fresh")
    now = timezone.now()
    InstanceAction.objects.filter(instance=overdue).update(deadline=now - timedelta(minutes=5))
    InstanceAction.objects.filter(instance=recent).update(deadline=now - timedelta(seconds=5))  # within the grace

    assert services.actions_expire() == 1
    overdue.refresh_from_db()
    assert (overdue.status, overdue.task_state) == ("ERROR", "")
    assert "abandoned" in overdue.fault
    assert _launch_action(overdue).status == ActionStatus.FAILED
    assert overdue.events.filter(event="failed", result="error").exists()
    for instance in (recent, fresh):
        instance.refresh_from_db()
        assert (instance.status, _launch_action(instance).status) == ("BUILDING", ActionStatus.PENDING)
    assert services.actions_expire() == 0


def test_reconcile_marks_a_vanished_server_error(demo, launched):
    instance = launched()
    SimServer.objects.filter(instance_uuid=instance.pk).delete()
    [run] = services.instances_reconcile()
    instance.refresh_from_db()
    assert instance.status == "ERROR"
    assert "vanished" in instance.fault
    assert run.vanished == [str(instance.pk)]
    assert (run.checked, run.updated, run.orphans) == (1, 1, [])
    assert instance.events.filter(event="vanished", result="error").exists()
    # The next pass has nothing new to say.
    [again] = services.instances_reconcile()
    assert (again.updated, again.vanished) == (0, [])


def test_reconcile_reports_orphans(demo, launched):
    ours = launched()
    stray = SimServer.objects.create(
        instance_uuid=uuid.uuid4(),
        name="stray",
        kind="vm",
        project_ref="acme",
        category_ref="standard",
        status="ACTIVE",
    )
    deleted = launched(name="gone")
    Instance.objects.filter(pk=deleted.pk).update(status=Status.DELETED)  # the row says deleted, the server lives
    [run] = services.instances_reconcile()
    orphans = {o["backend_id"]: o for o in run.orphans}
    assert set(orphans) == {str(stray.pk), deleted.backend_id}
    assert orphans[str(stray.pk)] == {
        "backend_id": str(stray.pk),
        "instance_id": str(stray.instance_uuid),
        "status": "ACTIVE",
    }
    assert ours.backend_id not in orphans
    assert SimServer.objects.filter(pk=stray.pk).exists()  # reported, not destroyed


def test_reconcile_syncs_status_drift(demo, launched):
    stopped_behind_our_back = launched(name="a")
    broken = launched(name="b")
    unchanged = launched(name="c")
    SimServer.objects.filter(instance_uuid=stopped_behind_our_back.pk).update(status="SHUTOFF")
    SimServer.objects.filter(instance_uuid=broken.pk).update(status="ERROR", fault="disk on fire")
    [run] = services.instances_reconcile()
    assert (run.checked, run.updated) == (3, 2)
    for instance in (stopped_behind_our_back, broken, unchanged):
        instance.refresh_from_db()
    assert stopped_behind_our_back.status == "STOPPED"
    assert (broken.status, broken.fault) == ("ERROR", "disk on fire")
    assert unchanged.status == "ACTIVE"
    assert stopped_behind_our_back.events.filter(event="status_synced").count() == 1
    assert not unchanged.events.filter(event="status_synced").exists()


def test_reconcile_leaves_instances_with_an_action_in_progress_alone(demo, launched):
    instance = launched()
    services.instance_act(user=demo.alice, instance=instance, operation="reboot")  # pending: the action owns the row
    SimServer.objects.filter(instance_uuid=instance.pk).update(status="SHUTOFF")
    [run] = services.instances_reconcile()
    instance.refresh_from_db()
    assert (instance.status, instance.task_state) == ("REBOOTING", "rebooting")
    assert run.updated == 0


def test_reconcile_run_counts_expired_actions(demo):
    [instance] = services.instance_launch(user=demo.alice, name="lost")
    InstanceAction.objects.filter(instance=instance).update(deadline=timezone.now() - timedelta(minutes=5))
    [run] = services.instances_reconcile()
    assert run.expired_actions == 1
    assert run.finished_at is not None
    instance.refresh_from_db()
    assert instance.status == "ERROR"


# --- quota and claims under parallel requests (real PostgreSQL transactions) -----------------------


def _in_parallel(n: int, work) -> list:
    """Run ``work(i)`` in ``n`` threads released together; return what each returned or raised."""
    barrier = threading.Barrier(n)
    results: list = [None] * n

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=10)
            results[i] = work(i)
        except Exception as exc:
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    return results


@pytest.mark.django_db(transaction=True)
def test_quota_holds_under_parallel_launches(demo):
    alice_id, vsa_id = demo.alice.pk, demo.categories["vsa"].pk

    def launch(i: int):
        user = get_user_model().objects.get(pk=alice_id)
        return services.instance_launch(user=user, name=f"p{i}", category=InstanceCategory.objects.get(pk=vsa_id))

    results = _in_parallel(8, launch)
    launched = [r for r in results if isinstance(r, list)]
    refused = [r for r in results if isinstance(r, QuotaExceeded)]
    assert (len(launched), len(refused)) == (3, 5), results
    assert Instance.objects.filter(category_id=vsa_id, project=demo.acme).count() == 3
    assert InstanceAction.objects.count() == 3
    assert InstanceEvent.objects.filter(event="requested").count() == 3


@pytest.mark.django_db(transaction=True)
def test_only_one_of_parallel_actions_claims_the_instance(demo):
    [instance] = services.instance_launch(user=demo.alice, name="web")  # its task ran on commit (eager)
    instance.refresh_from_db()
    assert instance.status == "ACTIVE"
    alice_id = demo.alice.pk

    def reboot(i: int):
        user = get_user_model().objects.get(pk=alice_id)
        return services.instance_act(user=user, instance=Instance.objects.get(pk=instance.pk), operation="reboot")

    results = _in_parallel(6, reboot)
    won = [r for r in results if isinstance(r, InstanceAction)]
    lost = [r for r in results if isinstance(r, Conflict)]
    assert (len(won), len(lost)) == (1, 5), results
    assert instance.actions.filter(action="reboot").count() == 1


def test_drift_compare_is_pure(demo, django_assert_num_queries):
    """The comparison reads no database and calls no backend: rows and servers in, drift out."""

    def row(**kwargs):
        return Instance(category=demo.categories["standard"], project=demo.acme, backend="sim", **kwargs)

    stopped = row(status="ACTIVE", backend_id="s1")
    gone = row(status="ACTIVE", backend_id="s2")
    busy = row(status="ACTIVE", backend_id="s3", task_state="rebooting")
    same = row(status="ACTIVE", backend_id="s4")
    servers = [
        ServerInfo(backend_id="s1", instance_id=str(stopped.pk), status=ServerStatus.STOPPED),
        ServerInfo(backend_id="s4", instance_id=str(same.pk), status=ServerStatus.ACTIVE),
        ServerInfo(backend_id="s9", instance_id="5f0c7f8e-0000-4000-8000-000000000000", status=ServerStatus.ACTIVE),
    ]
    with django_assert_num_queries(0):
        drift = services.drift_compare(backend="sim", rows=[stopped, gone, busy, same], servers=servers)
    assert [(i.pk, e.event) for i, e in drift.changes] == [(stopped.pk, "status_synced"), (gone.pk, "vanished")]
    assert (stopped.status, gone.status, busy.status) == ("STOPPED", "ERROR", "ACTIVE")
    assert [o["backend_id"] for o in drift.orphans] == ["s9"]
    assert drift.checked == 4
