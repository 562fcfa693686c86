"""The one policy module: who may see and do what, for every interface (DESIGN.md §2, rules 2 and 3).

``tenancy`` may not import the apps above it (import-linter), tests included, so the
models come from the shared factories and statuses are written as the API shows them.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser

from tenancy import policy
from tenancy.policy import Denial
from tests.factories import CategoryFactory, InstanceFactory, UserFactory

Instance = InstanceFactory._meta.model
InstanceCategory = CategoryFactory._meta.model

ALLOW, NOT_FOUND, FORBIDDEN, CONFLICT = "allow", Denial.NOT_FOUND, Denial.FORBIDDEN, Denial.CONFLICT
OPERATIONS = ["reboot", "stop", "start", "terminate", "appliance_gui"]


def _user(demo, name):
    """A fresh user object (the policy caches roles on the object it is given)."""
    if name == "anonymous":
        return AnonymousUser()
    return type(getattr(demo, name)).objects.get(username=name)


def _instance(demo, category="standard", project="acme", **kwargs):
    kwargs.setdefault("management_endpoint", "172.16.0.9:8080")
    return InstanceFactory(category=demo.categories[category], project=getattr(demo, project), **kwargs)


def _outcome(verdict):
    assert bool(verdict) is verdict.allowed
    return ALLOW if verdict else verdict.denial


# --- who is who -----------------------------------------------------------------


def test_provider_admin_is_active_staff_only(demo):
    assert policy.is_provider_admin(demo.admin)
    assert not policy.is_provider_admin(demo.alice)
    assert not policy.is_provider_admin(AnonymousUser())
    assert not policy.is_provider_admin(None)
    retired = UserFactory(username="retired", is_staff=True, is_active=False)
    assert not policy.is_provider_admin(retired)


def test_roles_name_each_users_projects(demo):
    assert policy.roles(_user(demo, "alice")) == {demo.acme.pk: "member"}
    assert policy.roles(_user(demo, "rita")) == {demo.acme.pk: "reader"}
    assert policy.role_in(_user(demo, "bob"), demo.globex) == "member"
    assert policy.role_in(_user(demo, "bob"), demo.acme) is None
    assert policy.roles(AnonymousUser()) == {}
    assert policy.member_project_ids(_user(demo, "alice")) == [demo.acme.pk]
    assert policy.member_project_ids(_user(demo, "rita")) == []


# --- instance visibility ------------------------------------------------------------


@pytest.fixture
def fleet(demo):
    """One instance per category in acme, plus globex's standard and cache instances."""
    return {
        "acme-standard": _instance(demo, "standard"),
        "acme-vsa": _instance(demo, "vsa"),
        "acme-lb": _instance(demo, "lb"),
        "acme-cache": _instance(demo, "cache"),
        "globex-standard": _instance(demo, "standard", "globex"),
        "globex-cache": _instance(demo, "cache", "globex"),
    }


@pytest.mark.parametrize(
    ("username", "expected"),
    [
        ("admin", {"acme-standard", "acme-vsa", "acme-lb", "acme-cache", "globex-standard", "globex-cache"}),
        ("alice", {"acme-standard", "acme-vsa", "acme-lb"}),
        ("rita", {"acme-standard", "acme-vsa", "acme-lb"}),
        ("bob", {"globex-standard"}),
        ("gina", {"globex-standard"}),
        ("anonymous", set()),
    ],
)
def test_instances_visible_to(demo, fleet, username, expected):
    user = _user(demo, username)
    visible = set(Instance.objects.visible_to(user).values_list("pk", flat=True))
    assert visible == {fleet[name].pk for name in expected}
    # can_view agrees with the queryset, instance by instance.
    for name, instance in fleet.items():
        assert _outcome(policy.can_view(user, instance)) == (ALLOW if name in expected else NOT_FOUND), name


def test_user_without_any_project_sees_nothing(demo, fleet):
    loner = UserFactory(username="loner")
    assert not Instance.objects.visible_to(loner).exists()
    assert not InstanceCategory.objects.visible_to(loner).exists()
    assert _outcome(policy.can_view(loner, fleet["acme-standard"])) == NOT_FOUND


@pytest.mark.parametrize(
    ("username", "expected"),
    [
        ("admin", {"standard", "lb", "vsa", "cache"}),
        ("alice", {"standard", "lb", "vsa"}),
        ("rita", {"standard", "lb", "vsa"}),
        ("bob", {"standard", "lb", "vsa"}),
        ("anonymous", set()),
    ],
)
def test_categories_visible_to(demo, username, expected):
    user = _user(demo, username)
    assert set(InstanceCategory.objects.visible_to(user).values_list("slug", flat=True)) == expected
    for slug, category in demo.categories.items():
        assert policy.category_visible(user, category) == (slug in expected), slug


def test_standard_stays_visible_even_when_not_flagged_user_visible(demo):
    InstanceCategory.objects.filter(slug="standard").update(user_visible=False)
    standard = InstanceCategory.objects.get(slug="standard")
    assert policy.category_visible(_user(demo, "alice"), standard)
    assert InstanceCategory.objects.visible_to(_user(demo, "alice")).filter(slug="standard").exists()


def test_hiding_a_category_hides_its_instances_from_members(demo, fleet):
    InstanceCategory.objects.filter(slug="vsa").update(user_visible=False)
    visible = set(Instance.objects.visible_to(_user(demo, "alice")).values_list("pk", flat=True))
    assert visible == {fleet["acme-standard"].pk, fleet["acme-lb"].pk}


@pytest.mark.parametrize(
    ("username", "category", "restricted"),
    [
        ("admin", "standard", False),
        ("admin", "vsa", False),
        ("admin", "lb", False),
        ("admin", "cache", False),
        ("alice", "standard", False),
        ("alice", "vsa", True),
        ("alice", "lb", True),
        ("rita", "lb", True),
        ("anonymous", "vsa", True),
    ],
)
def test_sees_restricted_view(demo, username, category, restricted):
    user = _user(demo, username)
    assert policy.sees_restricted_view(user, demo.categories[category]) is restricted
    assert policy.sees_restricted_view(user, _instance(demo, category)) is restricted


# --- operations ------------------------------------------------------------------------

# Expected outcome of each operation on an ACTIVE instance with a GUI endpoint, in acme.
MATRIX = {
    "standard": {
        "admin": dict.fromkeys(OPERATIONS, ALLOW) | {"start": CONFLICT},
        "alice": {
            "reboot": ALLOW,
            "stop": ALLOW,
            "start": CONFLICT,
            "terminate": ALLOW,
            "appliance_gui": FORBIDDEN,
        },
        "rita": dict.fromkeys(OPERATIONS, FORBIDDEN),
        "bob": dict.fromkeys(OPERATIONS, NOT_FOUND),
        "gina": dict.fromkeys(OPERATIONS, NOT_FOUND),
        "anonymous": dict.fromkeys(OPERATIONS, NOT_FOUND),
    },
    "vsa": {
        "admin": dict.fromkeys(OPERATIONS, ALLOW) | {"start": CONFLICT},
        "alice": {
            "reboot": ALLOW,
            "stop": FORBIDDEN,
            "start": FORBIDDEN,
            "terminate": ALLOW,
            "appliance_gui": ALLOW,
        },
        "rita": dict.fromkeys(OPERATIONS, FORBIDDEN),
        "bob": dict.fromkeys(OPERATIONS, NOT_FOUND),
        "anonymous": dict.fromkeys(OPERATIONS, NOT_FOUND),
    },
    "lb": {
        "admin": dict.fromkeys(OPERATIONS, ALLOW) | {"start": CONFLICT},
        "alice": dict.fromkeys(OPERATIONS, FORBIDDEN),
        "rita": dict.fromkeys(OPERATIONS, FORBIDDEN),
        "bob": dict.fromkeys(OPERATIONS, NOT_FOUND),
        "anonymous": dict.fromkeys(OPERATIONS, NOT_FOUND),
    },
    "cache": {
        "admin": dict.fromkeys(OPERATIONS, ALLOW) | {"start": CONFLICT},
        "alice": dict.fromkeys(OPERATIONS, NOT_FOUND),
        "rita": dict.fromkeys(OPERATIONS, NOT_FOUND),
        "bob": dict.fromkeys(OPERATIONS, NOT_FOUND),
        "anonymous": dict.fromkeys(OPERATIONS, NOT_FOUND),
    },
}
CASES = [(category, username) for category, by_user in MATRIX.items() for username in by_user]


@pytest.mark.parametrize(("category", "username"), CASES)
def test_can_operate_on_active_instance(demo, category, username):
    user = _user(demo, username)
    instance = _instance(demo, category)
    expected = MATRIX[category][username]
    assert {op: _outcome(policy.can(user, op, instance)) for op in OPERATIONS} == expected


def test_denials_carry_a_reason_a_human_reads(demo):
    instance = _instance(demo, "vsa")
    assert "Readers" in policy.can(_user(demo, "rita"), "reboot", instance).reason
    assert "vsa" in policy.can(_user(demo, "alice"), "stop", instance).reason
    assert policy.can(_user(demo, "bob"), "reboot", instance).reason == "No such instance."


@pytest.mark.parametrize("username", ["admin", "alice"])
def test_lifecycle_of_a_stopped_instance(demo, username):
    user = _user(demo, username)
    instance = _instance(demo, status="STOPPED")
    assert _outcome(policy.can(user, "start", instance)) == ALLOW
    assert _outcome(policy.can(user, "terminate", instance)) == ALLOW
    for verdict in (policy.can(user, "reboot", instance), policy.can(user, "stop", instance)):
        assert _outcome(verdict) == CONFLICT
        assert "STOPPED" in verdict.reason


@pytest.mark.parametrize("username", ["admin", "alice"])
def test_an_action_in_progress_blocks_every_operation(demo, username):
    user = _user(demo, username)
    instance = _instance(demo, task_state="rebooting", status="REBOOTING")
    for op in OPERATIONS:
        verdict = policy.can(user, op, instance)
        assert _outcome(verdict) == (FORBIDDEN if op == "appliance_gui" and username == "alice" else CONFLICT), op
    assert "busy" in policy.can(user, "terminate", instance).reason


def _allowed(user, instance) -> list[str]:
    return [op for op in OPERATIONS if policy.can(user, op, instance)]


def test_deleted_instance_allows_nothing(demo):
    instance = _instance(demo, status="DELETED")
    assert _allowed(demo.admin, instance) == []
    assert _outcome(policy.can(demo.admin, "terminate", instance)) == CONFLICT


def test_error_instance_may_only_be_terminated(demo):
    instance = _instance(demo, status="ERROR")
    assert _allowed(_user(demo, "alice"), instance) == ["terminate"]


def test_appliance_gui_needs_a_recorded_endpoint(demo):
    instance = _instance(demo, "vsa", management_endpoint="")
    verdict = policy.can(_user(demo, "alice"), "appliance_gui", instance)
    assert _outcome(verdict) == CONFLICT
    assert "endpoint" in verdict.reason


def test_reader_is_refused_before_the_state_is_looked_at(demo):
    # A reader learns "you may not" rather than "not now", whatever the state.
    instance = _instance(demo, status="STOPPED")
    assert _outcome(policy.can(_user(demo, "rita"), "reboot", instance)) == FORBIDDEN


# --- launch and catalog --------------------------------------------------------------


@pytest.mark.parametrize(
    ("username", "category", "project", "expected"),
    [
        ("admin", "standard", "acme", ALLOW),
        ("admin", "lb", "globex", ALLOW),
        ("admin", "cache", "acme", ALLOW),
        ("alice", "standard", "acme", ALLOW),
        ("alice", "vsa", "acme", ALLOW),
        ("alice", "lb", "acme", FORBIDDEN),
        ("alice", "cache", "acme", NOT_FOUND),
        ("alice", "standard", "globex", NOT_FOUND),
        ("rita", "standard", "acme", FORBIDDEN),
        ("rita", "vsa", "acme", FORBIDDEN),
        ("bob", "vsa", "globex", ALLOW),
        ("bob", "vsa", "acme", NOT_FOUND),
        ("anonymous", "standard", "acme", NOT_FOUND),
    ],
)
def test_can_launch(demo, username, category, project, expected):
    verdict = policy.can_launch(
        _user(demo, username), category=demo.categories[category], project=getattr(demo, project)
    )
    assert _outcome(verdict) == expected


def test_can_launch_a_category_whose_launch_was_withdrawn(demo):
    InstanceCategory.objects.filter(slug="vsa").update(user_operations=["reboot"])
    vsa = InstanceCategory.objects.get(slug="vsa")
    verdict = policy.can_launch(_user(demo, "alice"), category=vsa, project=demo.acme)
    assert _outcome(verdict) == FORBIDDEN
    assert "launch" in verdict.reason


@pytest.mark.parametrize(
    ("username", "allowed"),
    [("admin", True), ("alice", False), ("rita", False), ("bob", False), ("anonymous", False)],
)
def test_can_manage_catalog(demo, username, allowed):
    verdict = policy.can_manage_catalog(_user(demo, username))
    assert _outcome(verdict) == (ALLOW if allowed else FORBIDDEN)
