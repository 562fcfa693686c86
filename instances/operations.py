"""The operation table: every operation on an instance, declared once.

Each row says when an operation may start, what it claims while it runs, which
driver method starts it, which backend status ends it, and how a button offers
it. Every layer reads this table: the models (lifecycle checks and the action
choices), the policy (through the instance), the request and worker services,
the one Celery task, the API's choices and the console's buttons. Adding an
operation is one row here plus its driver method.

This module imports no model, so the catalog may read it too: the operations a
category grants its members (``user_operations``) are the rows marked
``grantable``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from django.db import models

from .choices import Status, TaskState
from .drivers.base import ServerStatus

# An instance that is not DELETED and not DELETING.
_LIVE = frozenset({Status.BUILDING, Status.ACTIVE, Status.STOPPED, Status.REBOOTING, Status.ERROR})


@dataclass(frozen=True)
class Operation:
    """One row of the table."""

    name: str
    label: str
    icon: str
    # Statuses it may start from; every operation also needs no other action in progress (rule 5).
    start_from: frozenset[str]
    # The action in progress while it runs, and the status shown meanwhile ("" keeps the current one).
    # An operation without a task state runs no action: it is a permission only (the appliance GUI).
    task_state: str = ""
    transitional_status: str = ""
    # The driver method that starts it, called once with the server's backend id and ``params``.
    driver_call: str = ""
    # The backend status that ends it; ``None``: it ends when the server is gone.
    awaits: ServerStatus | None = ServerStatus.ACTIVE
    # Boolean flags the caller may pass (``{"hard": true}``), handed to the driver call.
    params: tuple[str, ...] = ()
    # A question to confirm before it runs; empty: no confirmation.
    confirm: str = ""
    # A category may grant it to project members (``user_operations``).
    grantable: bool = True
    # Offered as a button on an instance's row.
    row_action: bool = True
    # Needs the appliance's recorded management endpoint.
    needs_endpoint: bool = False
    # Provider-managed and appliance servers are locked at the backend once it succeeds (rule 3).
    locks_managed: bool = False
    # It replaces the server: a new one is made (and health-checked), the instance moves to it,
    # the old one is deleted; a replacement that fails is deleted and the instance keeps its server.
    replaces: bool = False

    @property
    def runs_action(self) -> bool:
        return bool(self.task_state)

    @property
    def creates(self) -> bool:
        """It makes the server (launch): it starts from no row at all."""
        return self.driver_call == "create"

    @property
    def deletes(self) -> bool:
        return self.awaits is None

    def clean_params(self, raw: Mapping | None) -> dict[str, bool]:
        """The declared flags from a request body, a form or keyword arguments; anything else is dropped.

        A flag is on when given as ``True``, ``1`` or ``"1"``/``"true"``/``"on"``/``"yes"``.
        """
        raw = raw or {}
        return {name: _truthy(raw.get(name)) for name in self.params}

    def confirmation(self, instance_name: str) -> str:
        return self.confirm.format(name=instance_name) if self.confirm else ""


def _truthy(value) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "on", "yes"}
    return value is True or value == 1


TABLE: tuple[Operation, ...] = (
    Operation(
        name="launch",
        label="Launch",
        icon="bi-rocket-takeoff",
        start_from=frozenset(),
        task_state=TaskState.SCHEDULING,
        transitional_status=Status.BUILDING,
        driver_call="create",
        row_action=False,
        locks_managed=True,
    ),
    Operation(
        name="reboot",
        label="Reboot",
        icon="bi-arrow-clockwise",
        start_from=frozenset({Status.ACTIVE}),
        task_state=TaskState.REBOOTING,
        transitional_status=Status.REBOOTING,
        driver_call="reboot",
        params=("hard",),
    ),
    Operation(
        name="stop",
        label="Stop",
        icon="bi-stop-circle",
        start_from=frozenset({Status.ACTIVE}),
        task_state=TaskState.STOPPING,
        driver_call="stop",
        awaits=ServerStatus.STOPPED,
        confirm="Stop instance '{name}'?",
    ),
    Operation(
        name="start",
        label="Start",
        icon="bi-play-circle",
        start_from=frozenset({Status.STOPPED}),
        task_state=TaskState.STARTING,
        driver_call="start",
    ),
    Operation(
        name="terminate",
        label="Terminate",
        icon="bi-trash",
        start_from=_LIVE,
        task_state=TaskState.DELETING,
        transitional_status=Status.DELETING,
        driver_call="delete",
        awaits=None,
        confirm="Terminate instance '{name}'? Its server is deleted.",
    ),
    Operation(
        name="heal",
        label="Heal",
        icon="bi-bandaid",
        start_from=frozenset({Status.ACTIVE, Status.STOPPED, Status.ERROR}),
        task_state=TaskState.HEALING,
        confirm="Replace the server of '{name}' with a new one? The old server is deleted.",
        grantable=False,
        locks_managed=True,
        replaces=True,
    ),
    Operation(
        name="replace",
        label="Replace (rollout)",
        icon="bi-arrow-repeat",
        start_from=frozenset({Status.ACTIVE}),
        task_state=TaskState.REPLACING,
        grantable=False,
        row_action=False,
        locks_managed=True,
        replaces=True,
    ),
    Operation(
        name="appliance_gui",
        label="Open appliance GUI",
        icon="bi-box-arrow-up-right",
        start_from=frozenset({Status.ACTIVE}),
        row_action=False,
        needs_endpoint=True,
    ),
)

OPERATIONS: dict[str, Operation] = {op.name: op for op in TABLE}
# Operations that run as an action (an InstanceAction row and the Celery task).
ACTIONS: tuple[Operation, ...] = tuple(op for op in TABLE if op.runs_action)
# Verbs on an existing instance, each run by ``instance_act``.
VERBS: tuple[Operation, ...] = tuple(op for op in ACTIONS if not op.creates)
# Buttons on an instance's row.
ROW_ACTIONS: tuple[Operation, ...] = tuple(op for op in TABLE if op.row_action)
# What a category may grant its members.
GRANTABLE: tuple[Operation, ...] = tuple(op for op in TABLE if op.grantable)


def get(name: str) -> Operation:
    """The row of ``name``; ``KeyError`` for an unknown operation."""
    return OPERATIONS[name]


def _choices(name: str, rows: tuple[Operation, ...]) -> type[models.TextChoices]:
    return models.TextChoices(name, [(op.name.upper(), (op.name, op.label)) for op in rows])


# The ``action`` column of InstanceAction, and the operations a category grants (``user_operations``).
ActionType = _choices("ActionType", ACTIONS)
GrantableOperation = _choices("GrantableOperation", GRANTABLE)
