"""The tasks' failure paths: every accepted request ends in a terminal state."""

from __future__ import annotations

import pytest

from instances.models import Instance, InstanceAction


@pytest.fixture
def adminvms(settings):
    """Change ADMINVMS settings for one test: ``adminvms(SIM_OUTAGE=True)``."""

    def change(**values):
        settings.ADMINVMS = {**settings.ADMINVMS, **values}

    return change


def _launch(api, user, run_tasks, **body):
    with run_tasks():
        response = api(user).post("/api/v1/instances/", {"name": "t", **body}, format="json")
    assert response.status_code == 202, response.content
    return Instance.objects.get(pk=response.json()["id"])


def test_backend_outage_is_retried_then_ends_in_error(demo, api, run_tasks, adminvms):
    adminvms(SIM_OUTAGE=True, TASK_MAX_RETRIES=3)
    instance = _launch(api, demo.alice, run_tasks)
    assert instance.status == "ERROR"
    assert instance.task_state == ""
    assert "did not answer after 4 tries" in instance.fault
    action = InstanceAction.objects.get(instance=instance)
    assert action.status == "failed" and action.finished_at
    assert action.attempts == 4


def test_action_that_never_settles_ends_in_error_at_its_deadline(demo, api, run_tasks, adminvms):
    adminvms(SIM_BOOT_SECONDS=30, ACTION_TIMEOUT=0.5, POLL_INTERVAL=0.1)
    instance = _launch(api, demo.alice, run_tasks)
    assert instance.status == "ERROR"
    assert "did not finish within" in instance.fault
    assert instance.task_state == ""


def test_backend_removed_from_configuration_ends_in_error_not_stuck(
    demo, api, adminvms, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        response = api(demo.alice).post("/api/v1/instances/", {"name": "orphaned"}, format="json")
    assert response.status_code == 202
    adminvms(BACKENDS=[])  # the operator disabled the backend before the worker ran the task
    for callback in callbacks:
        callback()
    instance = Instance.objects.get(pk=response.json()["id"])
    assert instance.status == "ERROR"
    assert "not enabled" in instance.fault


def test_redelivered_task_of_a_finished_action_changes_nothing(demo, api, run_tasks):
    from instances import tasks

    instance = _launch(api, demo.alice, run_tasks)
    assert instance.status == "ACTIVE"
    action = InstanceAction.objects.get(instance=instance)
    tasks.run_action.apply(args=[str(action.pk)])  # a duplicate delivery
    instance.refresh_from_db()
    assert instance.status == "ACTIVE"
    assert InstanceAction.objects.get(pk=action.pk).attempts == action.attempts
