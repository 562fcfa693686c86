"""The operation table: every layer reads its rows, so adding an operation is one row plus its driver method."""

from __future__ import annotations

import inspect

import pytest
from django.core.exceptions import ValidationError

from categories.choices import Operation as GrantedOperation
from instances import operations, selectors
from instances.api.serializers import ActionRequestSerializer
from instances.drivers.base import ComputeDriver
from instances.models import InstanceAction
from tests.factories import InstanceFactory


@pytest.mark.parametrize("row", operations.ACTIONS, ids=lambda r: r.name)
def test_every_action_calls_a_method_of_the_driver_interface(row):
    if row.replaces:  # a replacement creates, probes and deletes
        assert all(callable(getattr(ComputeDriver, name)) for name in ("create", "get", "probe_many", "delete"))
        assert not row.driver_call and not row.grantable
        return
    method = getattr(ComputeDriver, row.driver_call)
    params = inspect.signature(method).parameters
    assert all(flag in params for flag in row.params), (row.name, row.params)


def test_the_vocabularies_come_from_the_table(demo):
    assert [v for v, _ in InstanceAction._meta.get_field("action").choices] == [op.name for op in operations.ACTIONS]
    assert GrantedOperation.values == [op.name for op in operations.TABLE if op.grantable]
    # A category grants what the table calls grantable, and nothing else.
    vsa = demo.categories["vsa"]
    vsa.user_operations = ["reboot", "appliance_gui"]
    vsa.full_clean()
    vsa.user_operations = ["reboot", "run_action"]
    with pytest.raises(ValidationError, match="run_action"):
        vsa.full_clean()
    # The row buttons; heal is the provider's (policy), and only rollouts replace.
    assert set(ActionRequestSerializer().fields["action"].choices) == {"reboot", "stop", "start", "heal"}
    assert "hard" in ActionRequestSerializer().fields


def test_flags_are_read_in_one_place():
    reboot = operations.get("reboot")
    assert reboot.clean_params({"hard": "1", "columns": "console"}) == {"hard": True}
    assert reboot.clean_params({"hard": True}) == {"hard": True}
    assert reboot.clean_params({"hard": "false"}) == {"hard": False}
    assert reboot.clean_params(None) == {"hard": False}
    assert operations.get("stop").clean_params({"hard": True}) == {}


@pytest.mark.parametrize(
    ("status", "task_state", "expected"),
    [
        ("ACTIVE", "", ["reboot", "stop", "terminate", "heal", "appliance_gui"]),
        ("STOPPED", "", ["start", "terminate", "heal"]),
        ("ERROR", "", ["terminate", "heal"]),
        ("REBOOTING", "rebooting", []),
        ("DELETED", "", []),
    ],
)
def test_allowed_operations_follow_the_start_states(demo, status, task_state, expected):
    instance = InstanceFactory(
        category=demo.categories["vsa"],
        project=demo.acme,
        status=status,
        task_state=task_state,
        management_endpoint="172.16.0.9:8080",
    )
    assert selectors.allowed_operations(demo.admin, instance) == expected
