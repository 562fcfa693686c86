"""Every rule about instances, one concern a module:

- ``lifecycle``: the request side — launch, and the verbs of the operation table;
- ``execution``: the worker side — running an action step by step against its backend;
- ``reconcile``: comparing rows with what the backends report, and applying the drift;
- ``catalog``: mirroring what the backends offer;
- ``records``: the actions and events every one of them writes;
- ``gui``: opening an appliance's GUI on its own origin (ticket, session, per-user cap);
- ``adoption``: servers adminvms did not create, matched to categories by rules and taken over.

Every caller (REST API, web pages, Celery tasks, management commands) goes
through these functions; none repeats a rule. The names below are the public ones.
"""

from .adoption import BUILTIN_RULES as BUILTIN_RULE_SETS
from .adoption import adoption_apply, adoption_plan, rules_from, rules_named, rules_saved
from .catalog import backend_problem, catalog_sync, image_categories_set, volume_categories_set, volumes_sync
from .execution import action_fail, action_step, actions_expire
from .gui import gui_access, gui_slot_acquire, gui_slot_release, gui_ticket_issue, gui_ticket_redeem
from .lifecycle import instance_act, instance_launch
from .reconcile import drift_apply, drift_compare, instances_reconcile

__all__ = [
    "BUILTIN_RULE_SETS",
    "action_fail",
    "action_step",
    "actions_expire",
    "adoption_apply",
    "adoption_plan",
    "backend_problem",
    "catalog_sync",
    "drift_apply",
    "drift_compare",
    "gui_access",
    "gui_slot_acquire",
    "gui_slot_release",
    "gui_ticket_issue",
    "gui_ticket_redeem",
    "image_categories_set",
    "instance_act",
    "instance_launch",
    "instances_reconcile",
    "rules_from",
    "rules_named",
    "rules_saved",
    "volume_categories_set",
    "volumes_sync",
]
