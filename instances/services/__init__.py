"""Every rule about instances, one concern a module:

- ``lifecycle``: the request side — launch, and the verbs of the operation table;
- ``execution``: the worker side — running an action step by step against its backend;
- ``reconcile``: comparing rows with what the backends report, and applying the drift;
- ``catalog``: mirroring what the backends offer;
- ``records``: the actions and events every one of them writes;
- ``gui``: opening an appliance's GUI on its own origin (ticket, session, per-user cap);
- ``adoption``: servers adminvms did not create, matched to categories by rules and taken over;
- ``health``: probing the appliances of categories with a health check, and their verdicts;
- ``fleet``: auto-heal behind a circuit breaker, rolling replacement to a new image, spare pools;
- ``counts``: the console overview's counts of the fleet, taken by the worker for a large one.

Every caller (REST API, web pages, Celery tasks, management commands) goes
through these functions; none repeats a rule. The names below are the public ones.
"""

from .adoption import BUILTIN_RULES as BUILTIN_RULE_SETS
from .adoption import adoption_apply, adoption_plan, rules_from, rules_named, rules_saved
from .catalog import backend_problem, catalog_sync, image_categories_set, volume_categories_set, volumes_sync
from .counts import counts_take, overview_counts
from .execution import action_fail, action_step, actions_expire
from .fleet import (
    breaker_resume,
    fleet_run,
    open_breakers,
    rollout_progress,
    rollout_set,
    rollout_start,
    rollout_verbs,
    rollouts_progress,
)
from .gui import gui_access, gui_slot_acquire, gui_slot_release, gui_ticket_issue, gui_ticket_redeem
from .health import health_check
from .lifecycle import instance_act, instance_launch, spare_project
from .reconcile import drift_apply, drift_compare, instances_reconcile

__all__ = [
    "BUILTIN_RULE_SETS",
    "action_fail",
    "action_step",
    "actions_expire",
    "adoption_apply",
    "adoption_plan",
    "backend_problem",
    "breaker_resume",
    "catalog_sync",
    "counts_take",
    "drift_apply",
    "drift_compare",
    "fleet_run",
    "gui_access",
    "gui_slot_acquire",
    "gui_slot_release",
    "gui_ticket_issue",
    "gui_ticket_redeem",
    "health_check",
    "image_categories_set",
    "instance_act",
    "instance_launch",
    "instances_reconcile",
    "open_breakers",
    "overview_counts",
    "rollout_progress",
    "rollout_set",
    "rollout_start",
    "rollout_verbs",
    "rollouts_progress",
    "rules_from",
    "rules_named",
    "rules_saved",
    "spare_project",
    "volume_categories_set",
    "volumes_sync",
]
