"""Two deliveries of one replacement step at once (the broker hands a message out again when its first
delivery outlives the visibility timeout) make one server, not two: seen on the test control plane as
two servers of one generation after a heal. Real threads, each with its own database connection."""

from __future__ import annotations

import threading

import pytest
from celery import current_app
from django.db import connection

from instances import services
from instances.choices import ActionStatus, Status
from instances.drivers.sim.models import SimServer
from instances.models import Instance, InstanceAction


@pytest.mark.django_db(transaction=True)
def test_two_deliveries_of_a_heal_step_at_once_make_one_replacement(demo, settings):
    settings.ADMINVMS = {**settings.ADMINVMS, "FAULT_PAUSE_AFTER_CREATE": 1.0}
    [vsa] = services.instance_launch(user=demo.alice, name="store", category=demo.categories["vsa"])
    launch = vsa.actions.get()
    while services.action_step(action_id=launch.pk) is not None:
        pass
    vsa.refresh_from_db()
    assert vsa.status == Status.ACTIVE
    # The heal's task goes to the real broker (not run at once, as the tests' eager tasks are), and is
    # taken off it again: the two deliveries below are the test's own.
    current_app.conf.task_always_eager = False
    try:
        heal = services.instance_act(user=demo.admin, instance=vsa, operation="heal")
    finally:
        current_app.conf.task_always_eager = True
    current_app.control.purge()

    barrier, errors = threading.Barrier(2), []

    def deliver():
        try:
            barrier.wait(timeout=30)
            services.action_step(action_id=heal.pk)
        except BaseException as exc:  # the assertion below shows it
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert SimServer.objects.filter(instance_uuid=vsa.pk, generation=1).count() == 1
    while services.action_step(action_id=heal.pk) is not None:
        pass
    healed = Instance.objects.get(pk=vsa.pk)
    assert InstanceAction.objects.get(pk=heal.pk).status == ActionStatus.SUCCEEDED
    assert (
        list(SimServer.objects.filter(instance_uuid=vsa.pk).values_list("pk", flat=True)) == [healed.backend_id]
        or str(SimServer.objects.get(instance_uuid=vsa.pk).pk) == healed.backend_id
    )
