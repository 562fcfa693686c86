"""What keeps an action cheap (issue 14, lifecycle throughput), as behaviour: a backend that answers
at once ends the action in one step, a step commits what it learnt once, and the simulated cloud
makes a server without reading all of them. Timing is the benchmark's business, not this file's."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from instances import services
from instances.choices import ActionStatus, Status
from instances.drivers.base import BackendUnavailable, ServerSpec, ServerStatus
from instances.drivers.sim.driver import SimDriver
from instances.drivers.sim.models import SimServer
from instances.models import Instance, InstanceAction
from instances.services import execution

# Statements of one step, BEGIN and COMMIT included (they were about 30 a step before).
LAUNCH_STEP_MAX = 16
TERMINATE_STEP_MAX = 15


@pytest.fixture
def adminvms(settings):
    """Change ADMINVMS settings for one test: ``adminvms(SIM_BOOT_SECONDS=60)``."""

    def change(**values):
        settings.ADMINVMS = {**settings.ADMINVMS, **values}

    return change


def _action(instance, name: str) -> InstanceAction:
    return instance.actions.get(action=name)


def _step(action) -> tuple[float | None, list[str]]:
    with CaptureQueriesContext(connection) as queries:
        countdown = services.action_step(action_id=action.pk)
    return countdown, [q["sql"] for q in queries.captured_queries]


def _spec(n: int, **extra) -> ServerSpec:
    fields = dict(
        instance_id=f"00000000-0000-4000-8000-{n:012d}", name=f"s{n}", kind="vm", project="acme",
        project_backend_id="", category="standard", managed=False, flavor=None, image="", image_name="",
        network_placement="project", availability_zone="", anti_affinity="", gui_port=None,
    )  # fmt: skip
    return ServerSpec(**{**fields, **extra})


def test_a_launch_the_backend_answers_at_once_ends_in_one_step(demo):
    [instance] = services.instance_launch(user=demo.alice, name="web")
    countdown, sql = _step(_action(instance, "launch"))
    assert countdown is None  # no poll: the server was ACTIVE when it was made
    assert len(sql) <= LAUNCH_STEP_MAX, "\n".join(sql)
    assert sum(s.startswith("COMMIT") for s in sql) <= 3  # the step's start, the cloud's create, the end
    instance.refresh_from_db()
    server = SimServer.objects.get(instance_uuid=instance.pk)
    assert (instance.status, instance.task_state, instance.backend_id) == (Status.ACTIVE, "", str(server.pk))
    assert (instance.host, instance.addresses) == (server.host, server.addresses) and instance.launched_at
    action = _action(instance, "launch")
    assert (action.status, action.attempts) == (ActionStatus.SUCCEEDED, 1) and action.started_at
    events = list(instance.events.values_list("event", flat=True))
    assert events == ["requested", "spawning", "finished"]


def test_a_terminate_ends_in_one_step_with_its_events(demo):
    [instance] = services.instance_launch(user=demo.alice, name="web")
    services.action_step(action_id=_action(instance, "launch").pk)
    instance.refresh_from_db()
    services.instance_act(user=demo.alice, instance=instance, operation="terminate")
    countdown, sql = _step(_action(instance, "terminate"))
    assert countdown is None
    assert len(sql) <= TERMINATE_STEP_MAX, "\n".join(sql)
    instance.refresh_from_db()
    assert (instance.status, instance.task_state) == (Status.DELETED, "") and instance.deleted_at
    assert not SimServer.objects.exists()
    action = _action(instance, "terminate")
    assert (action.status, action.backend_called) == (ActionStatus.SUCCEEDED, True)
    assert list(action.events.values_list("event", flat=True)) == ["requested", "backend_called", "finished"]


def test_a_launch_still_booting_records_its_server_before_it_polls(demo, adminvms):
    adminvms(SIM_BOOT_SECONDS=60)
    [instance] = services.instance_launch(user=demo.alice, name="web")
    action = _action(instance, "launch")
    assert services.action_step(action_id=action.pk) is not None  # poll again
    instance.refresh_from_db()
    server = SimServer.objects.get(instance_uuid=instance.pk)
    assert (server.status, instance.status, instance.task_state) == ("BUILD", Status.BUILDING, "spawning")
    assert instance.backend_id == str(server.pk)
    SimServer.objects.filter(pk=server.pk).update(ready_at=timezone.now() - timedelta(seconds=1))
    assert services.action_step(action_id=action.pk) is None
    instance.refresh_from_db()
    assert (instance.status, instance.task_state) == (Status.ACTIVE, "")
    assert SimServer.objects.filter(instance_uuid=instance.pk).count() == 1
    assert _action(instance, "launch").attempts == 2


def test_a_transient_error_after_the_backend_call_keeps_that_the_call_was_made(demo, monkeypatch):
    [instance] = services.instance_launch(user=demo.alice, name="web")
    services.action_step(action_id=_action(instance, "launch").pk)
    instance.refresh_from_db()
    services.instance_act(user=demo.alice, instance=instance, operation="reboot")
    action = _action(instance, "reboot")
    calls = []
    real_reboot, real_get = SimDriver.reboot, SimDriver.get

    def reboot(self, backend_id, **kwargs):
        calls.append(backend_id)
        return real_reboot(self, backend_id, **kwargs)

    def get_down(self, backend_id):
        raise BackendUnavailable("the cloud's API stopped answering")

    monkeypatch.setattr(SimDriver, "reboot", reboot)
    monkeypatch.setattr(SimDriver, "get", get_down)
    with pytest.raises(BackendUnavailable):
        services.action_step(action_id=action.pk)
    action.refresh_from_db()
    assert action.backend_called and action.is_open
    assert "backend_called" in set(action.events.values_list("event", flat=True))
    monkeypatch.setattr(SimDriver, "get", real_get)
    assert services.action_step(action_id=action.pk) is None
    assert len(calls) == 1  # the retry polled; it did not reboot a second time
    instance.refresh_from_db()
    assert (instance.status, instance.task_state) == (Status.ACTIVE, "")


def test_an_action_ends_once_when_deliveries_race(demo):
    [instance] = services.instance_launch(user=demo.alice, name="web")
    stale = _action(instance, "launch")  # what a second delivery read before the first ended it
    services.action_step(action_id=stale.pk)
    execution._close(stale.pk, ok=False, status=Status.ERROR, message="late", action=stale)
    instance.refresh_from_db()
    assert (instance.status, instance.fault) == (Status.ACTIVE, "")
    assert _action(instance, "launch").status == ActionStatus.SUCCEEDED
    assert instance.events.filter(event__in=["finished", "failed"]).count() == 1


def test_the_sim_makes_a_server_without_reading_the_others(demo):
    driver = SimDriver()
    driver.create(_spec(1))
    with CaptureQueriesContext(connection) as few:
        driver.create(_spec(2))
    SimServer.objects.bulk_create(
        SimServer(name=f"bulk-{n}", kind="vm", project_ref="acme", category_ref="standard", status="ACTIVE", seq=n)
        for n in range(3, 503)
    )
    with CaptureQueriesContext(connection) as many:
        info = driver.create(_spec(600))
    assert len(many.captured_queries) == len(few.captured_queries)
    assert not [q["sql"] for q in many.captured_queries if "COUNT(" in q["sql"] or "GROUP BY" in q["sql"]]
    assert SimServer.objects.get(pk=info.backend_id).seq == 503


def test_the_sim_spreads_servers_over_its_hosts_with_their_own_addresses(demo, adminvms):
    adminvms(SIM_HOSTS=3)
    driver = SimDriver()
    servers = [driver.create(_spec(n)) for n in range(1, 7)]
    hosts = [s.host for s in servers]
    assert {hosts.count(h) for h in set(hosts)} == {2} and len(set(hosts)) == 3
    assert len({s.addresses["project"][0] for s in servers}) == 6
    # A second create for the same instance finds the first (exactly once), and its state is settled.
    again = driver.create(_spec(1))
    assert again.backend_id == servers[0].backend_id and SimServer.objects.count() == 6
    assert all(s.status == ServerStatus.ACTIVE for s in servers)


def test_the_sim_lock_and_delete_of_a_missing_server(demo):
    driver = SimDriver()
    driver.delete("00000000-0000-4000-8000-000000000999")  # gone already: no error
    driver.delete("not-a-uuid")
    with pytest.raises(Exception, match="No server"):
        driver.lock("00000000-0000-4000-8000-000000000999", reason="x")
    assert not Instance.objects.exists()
