"""Instances through /api/v1/: every rule of DESIGN.md §2 as a client sees it, and the §4 contract."""

from __future__ import annotations

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from categories.models import InstanceCategory
from instances.drivers.sim.models import SimServer
from instances.models import Instance, InstanceAction, InstanceEvent
from tests.factories import InstanceFactory

INSTANCES = "/api/v1/instances/"
RESTRICTED_FIELDS = {"backend_id", "host", "management_endpoint", "metadata", "availability_zone"}


def _ok(response, code=200):
    assert response.status_code == code, (response.status_code, response.content[:500])
    return response.json()


def _error(response, code, field):
    """The answer is ``code`` and its JSON names ``field``."""
    assert response.status_code == code, (response.status_code, response.content[:500])
    body = response.json()
    assert field in body or body.get("field") == field, body
    return body


def _ids(response):
    return {item["id"] for item in _ok(response)["results"]}


@pytest.fixture
def launch(api, run_tasks):
    """``launch(user, name=…, category=…)`` → the instance, its launch run to the end."""

    def make(user, **body):
        body.setdefault("name", "vm")
        with run_tasks():
            response = api(user).post(INSTANCES, body, format="json")
        _ok(response, 202)
        return Instance.objects.get(pk=response.json()["id"])

    return make


def _counts():
    return Instance.objects.count(), InstanceAction.objects.count(), InstanceEvent.objects.count()


# --- rule 1: backward compatibility ----------------------------------------------------------


def test_launch_without_category_is_standard(demo, api, run_tasks):
    client = api(demo.alice)
    with run_tasks():
        response = client.post(INSTANCES, {"name": "web"}, format="json")
    body = _ok(response, 202)
    assert body["category"] == "standard"
    assert body["project"] == "acme"
    assert body["status"] == "BUILDING"
    assert body["flavor"] == "m1.small"
    assert body["image_name"] == "debian-12"
    shown = _ok(client.get(f"{INSTANCES}{body['id']}/"))
    assert shown["status"] == "ACTIVE"
    assert shown["task_state"] == ""
    assert shown["simulated"] is True
    assert shown["launched_at"]


@pytest.fixture
def spread(demo):
    """Instances of every category in acme, and a standard one in globex."""
    return {
        name: InstanceFactory(name=name, category=demo.categories[slug], project=project)
        for name, slug, project in [
            ("acme-standard", "standard", demo.acme),
            ("acme-vsa", "vsa", demo.acme),
            ("acme-lb", "lb", demo.acme),
            ("acme-cache", "cache", demo.acme),
            ("globex-standard", "standard", demo.globex),
        ]
    }


def _expect(spread, *names):
    return {str(spread[name].pk) for name in names}


def test_list_without_category_returns_only_standard(demo, api, spread):
    assert _ids(api(demo.alice).get(INSTANCES)) == _expect(spread, "acme-standard")
    assert _ids(api(demo.rita).get(INSTANCES)) == _expect(spread, "acme-standard")
    assert _ids(api(demo.bob).get(INSTANCES)) == _expect(spread, "globex-standard")
    assert _ids(api(demo.admin).get(INSTANCES)) == _expect(spread, "acme-standard", "globex-standard")


@pytest.mark.parametrize(
    ("username", "category", "expected"),
    [
        ("alice", "standard", ["acme-standard"]),
        ("alice", "vsa", ["acme-vsa"]),
        ("alice", "lb", ["acme-lb"]),
        ("bob", "vsa", []),
        ("admin", "cache", ["acme-cache"]),
        ("admin", "all", ["acme-standard", "acme-vsa", "acme-lb", "acme-cache", "globex-standard"]),
    ],
)
def test_list_filtered_by_category(demo, api, spread, username, category, expected):
    response = api(getattr(demo, username)).get(INSTANCES, {"category": category})
    assert _ids(response) == _expect(spread, *expected)


@pytest.mark.parametrize("category", ["all", "cache", "no-such-category"])
def test_member_asking_for_all_hidden_or_unknown_category_is_400(demo, api, spread, category):
    _error(api(demo.alice).get(INSTANCES, {"category": category}), 400, "category")


def test_hidden_category_reads_like_an_unknown_one(demo, api):
    hidden = api(demo.alice).get(INSTANCES, {"category": "cache"}).json()["category"]
    unknown = api(demo.alice).get(INSTANCES, {"category": "nope"}).json()["category"]
    assert [m.replace("cache", "X") for m in hidden] == [m.replace("nope", "X") for m in unknown]


def test_list_filtered_by_status_and_project(demo, api, spread):
    InstanceFactory(name="acme-stopped", category=demo.categories["standard"], project=demo.acme, status="STOPPED")
    admin = api(demo.admin)
    assert {i["name"] for i in _ok(admin.get(INSTANCES, {"status": "stopped"}))["results"]} == {"acme-stopped"}
    both = _ok(admin.get(INSTANCES, {"status": "ACTIVE,STOPPED", "project": "acme"}))["results"]
    assert {i["name"] for i in both} == {"acme-standard", "acme-stopped"}
    assert _ids(admin.get(INSTANCES, {"project": "globex"})) == _expect(spread, "globex-standard")
    _error(admin.get(INSTANCES, {"status": "SLEEPING"}), 400, "status")
    # A member naming somebody else's project learns nothing about it.
    _error(api(demo.alice).get(INSTANCES, {"project": "globex"}), 400, "project")


# --- rule 2: visibility --------------------------------------------------------------------------


def test_member_never_sees_another_projects_instance(demo, api, launch):
    theirs = launch(demo.bob, name="bob-vm")
    client = api(demo.alice)
    url = f"{INSTANCES}{theirs.pk}/"
    assert client.get(url).status_code == 404
    assert client.delete(url).status_code == 404
    assert client.post(f"{url}action/", {"action": "reboot"}, format="json").status_code == 404
    assert client.get(f"{url}events/").status_code == 404
    assert str(theirs.pk) not in _ids(client.get(INSTANCES))
    theirs.refresh_from_db()
    assert (theirs.status, theirs.task_state) == ("ACTIVE", "")
    assert theirs.actions.count() == 1  # the launch only
    # And the 404 reads exactly like one for an id that never existed.
    missing = client.get(f"{INSTANCES}00000000-0000-0000-0000-000000000000/")
    assert missing.status_code == 404
    assert client.get(url).json() == missing.json()


def test_member_does_not_see_hidden_category_instances(demo, api, spread):
    assert api(demo.alice).get(f"{INSTANCES}{spread['acme-cache'].pk}/").status_code == 404
    assert api(demo.admin).get(f"{INSTANCES}{spread['acme-cache'].pk}/").status_code == 200


def test_malformed_instance_id_is_404(demo, api):
    assert api(demo.alice).get(f"{INSTANCES}not-a-uuid/").status_code == 404
    assert api(demo.alice).post(f"{INSTANCES}123/action/", {"action": "reboot"}, format="json").status_code == 404


def _assert_restricted(body):
    assert not RESTRICTED_FIELDS & set(body), body
    assert set(body["addresses"]) <= {"project"}
    assert body["restricted"] is True


@pytest.mark.parametrize("category", ["vsa", "lb"])
def test_managed_instances_are_restricted_for_members(demo, api, launch, category):
    instance = launch(demo.admin, name=f"{category}-1", category=category, project="acme")
    url = f"{INSTANCES}{instance.pk}/"

    full = _ok(api(demo.admin).get(url))
    assert full["status"] == "ACTIVE"
    assert full["restricted"] is False
    assert full["backend_id"] and full["host"].startswith("sim-host-")
    assert full["metadata"]["adminvms_instance"] == str(instance.pk)
    assert set(full["addresses"]) == {"project", "management"}  # dual-homed
    if category == "vsa":
        assert full["management_endpoint"].endswith(":8080")

    for user in (demo.alice, demo.rita):
        client = api(user)
        shown = _ok(client.get(url))
        _assert_restricted(shown)
        assert shown["addresses"]["project"] == full["addresses"]["project"]
        listed = _ok(client.get(INSTANCES, {"category": category}))["results"]
        assert [i["id"] for i in listed] == [str(instance.pk)]
        _assert_restricted(listed[0])
        # Nothing of the management side leaks anywhere in the body either.
        for secret in [full["backend_id"], full["host"], *full["addresses"]["management"]]:
            assert secret not in str(shown) and secret not in str(listed)


def test_member_launch_and_action_responses_are_restricted_too(demo, api, run_tasks):
    client = api(demo.alice)
    with run_tasks():
        launched = client.post(INSTANCES, {"name": "store", "category": "vsa"}, format="json")
    _assert_restricted(_ok(launched, 202))
    accepted = _ok(client.post(f"{INSTANCES}{launched.json()['id']}/action/", {"action": "reboot"}, format="json"), 202)
    _assert_restricted(accepted["instance"])


def test_standard_instances_are_not_restricted_for_members(demo, api, launch):
    instance = launch(demo.alice, name="web")
    body = _ok(api(demo.alice).get(f"{INSTANCES}{instance.pk}/"))
    assert body["restricted"] is False
    assert body["backend_id"] == instance.backend_id != ""
    assert body["metadata"]["adminvms_category"] == "standard"


def test_managed_instances_are_locked_at_the_backend(demo, launch):
    # Rule 3: a user cannot bypass the dashboard by going to the cloud directly.
    servers = {
        slug: SimServer.objects.get(instance_uuid=launch(demo.admin, category=slug, project="acme").pk)
        for slug in ("standard", "vsa", "lb")
    }
    assert {slug: server.locked for slug, server in servers.items()} == {
        "standard": False,
        "vsa": True,
        "lb": True,
    }


# --- rule 3: operations --------------------------------------------------------------------------


def test_member_cannot_act_on_a_provider_managed_instance(demo, api, launch):
    lb = launch(demo.admin, name="lb-1", category="lb", project="acme")
    client = api(demo.alice)
    url = f"{INSTANCES}{lb.pk}/"
    assert _ok(client.get(url))["allowed_operations"] == []
    for verb in ("reboot", "stop"):
        _error(client.post(f"{url}action/", {"action": verb}, format="json"), 403, "detail")
    _error(client.delete(url), 403, "detail")
    lb.refresh_from_db()
    assert (lb.status, lb.task_state) == ("ACTIVE", "")
    assert lb.actions.count() == 1
    # The provider admin may.
    _ok(api(demo.admin).post(f"{url}action/", {"action": "reboot"}, format="json"), 202)


def test_a_provider_category_grants_members_nothing(demo, api, launch):
    """The attack: an operator grants members reboot and terminate on the provider's lb; alice terminates one."""
    lb = launch(demo.admin, name="lb-1", category="lb", project="acme")
    refused = _error(
        api(demo.admin).patch("/api/v1/categories/lb/", {"user_operations": ["reboot", "terminate"]}, format="json"),
        400,
        "user_operations",
    )
    assert "grants project members no operation" in str(refused)
    # Even a grant stored before the rule (or behind the services' back) gives members nothing.
    InstanceCategory.objects.filter(slug="lb").update(user_operations=["reboot", "terminate"])
    client = api(demo.alice)
    assert _ok(client.get(f"{INSTANCES}{lb.pk}/"))["allowed_operations"] == []
    _error(client.delete(f"{INSTANCES}{lb.pk}/"), 403, "detail")
    lb.refresh_from_db()
    assert (lb.status, lb.task_state) == ("ACTIVE", "")


def test_reader_cannot_act_at_all(demo, api, launch):
    instance = launch(demo.alice, name="web")
    client = api(demo.rita)
    url = f"{INSTANCES}{instance.pk}/"
    shown = _ok(client.get(url))
    assert shown["allowed_operations"] == []
    for verb in ("reboot", "stop"):
        assert client.post(f"{url}action/", {"action": verb}, format="json").status_code == 403
    assert client.delete(url).status_code == 403
    # Not allowed is 403 (DESIGN.md §4), with or without the project named.
    for body in ({"name": "mine"}, {"name": "mine", "project": "acme"}, {"name": "mine", "category": "vsa"}):
        refused = _error(client.post(INSTANCES, body, format="json"), 403, "detail")
        assert "Readers" in refused["detail"]
    assert Instance.objects.count() == 1
    assert instance.actions.count() == 1


def test_member_may_only_invoke_the_categorys_operations(demo, api, launch, run_tasks):
    vsa = launch(demo.alice, name="store", category="vsa")
    client = api(demo.alice)
    url = f"{INSTANCES}{vsa.pk}/"
    assert _ok(client.get(url))["allowed_operations"] == ["reboot", "terminate", "appliance_gui"]
    body = _error(client.post(f"{url}action/", {"action": "stop"}, format="json"), 403, "detail")
    assert "vsa" in body["detail"]
    with run_tasks():
        accepted = _ok(client.post(f"{url}action/", {"action": "reboot", "hard": True}, format="json"), 202)
    assert accepted["action"] == "reboot"
    assert InstanceAction.objects.get(pk=accepted["action_id"]).params == {"hard": True}
    assert _ok(client.get(url))["status"] == "ACTIVE"


def test_member_cannot_launch_a_provider_managed_category(demo, api):
    _error(api(demo.alice).post(INSTANCES, {"name": "lb", "category": "lb"}, format="json"), 403, "detail")
    assert not Instance.objects.exists()


# --- rule 4: defaults and requirements --------------------------------------------------------------


def test_launch_fills_category_defaults(demo, api):
    body = _ok(api(demo.alice).post(INSTANCES, {"name": "store", "category": "vsa"}, format="json"), 202)
    assert (body["flavor"], body["image_name"]) == ("m1.small", "vsa-appliance")


def test_explicit_allowed_flavor_is_used(demo, api):
    body = _ok(
        api(demo.alice).post(INSTANCES, {"name": "s", "category": "vsa", "flavor": "m1.large"}, format="json"), 202
    )
    assert body["flavor"] == "m1.large"


def test_flavor_not_allowed_for_category_is_400(demo, api):
    body = _error(
        api(demo.alice).post(INSTANCES, {"name": "s", "category": "vsa", "flavor": "m1.tiny"}, format="json"),
        400,
        "flavor",
    )
    assert "not allowed" in body["detail"]
    assert not Instance.objects.exists()


def test_flavor_below_minimums_is_400(demo, api):
    InstanceCategory.objects.filter(slug="vsa").update(min_ram_mb=4096)
    body = _error(
        api(demo.alice).post(INSTANCES, {"name": "s", "category": "vsa", "flavor": "m1.small"}, format="json"),
        400,
        "flavor",
    )
    assert "minimums" in body["detail"]
    assert not Instance.objects.exists()


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"flavor": "m9.huge"}, "flavor"),
        ({"image": "windows-95"}, "image"),
        ({"image": "00000000-0000-0000-0000-000000000000"}, "image"),
        ({"image": "cache-redis"}, "image"),  # hidden category: reads as unknown
        ({"image": "vsa-appliance"}, "image"),  # offered for another category
        ({"category": "no-such-category"}, "category"),
        ({"category": "cache"}, "category"),  # hidden: reads as unknown
        ({"project": "initech"}, "project"),
        ({"project": "globex"}, "project"),  # somebody else's: reads as unknown
    ],
)
def test_unknown_or_unfit_references_are_400_naming_the_field(demo, api, extra, field):
    _error(api(demo.alice).post(INSTANCES, {"name": "x", **extra}, format="json"), 400, field)
    assert not Instance.objects.exists()


def test_inactive_category_is_400(demo, api):
    _ok(api(demo.admin).patch("/api/v1/categories/vsa/", {"is_active": False}, format="json"))
    body = _error(api(demo.alice).post(INSTANCES, {"name": "s", "category": "vsa"}, format="json"), 400, "category")
    assert "inactive" in body["detail"]
    assert not Instance.objects.exists()


def test_admin_must_name_the_project(demo, api):
    _error(api(demo.admin).post(INSTANCES, {"name": "x"}, format="json"), 400, "project")
    body = _ok(api(demo.admin).post(INSTANCES, {"name": "x", "project": "globex"}, format="json"), 202)
    assert body["project"] == "globex"


def test_image_by_id_or_name(demo, api):
    client = api(demo.alice)
    by_id = _ok(client.post(INSTANCES, {"name": "a", "image": str(demo.images["fail-boot"].pk)}, format="json"), 202)
    by_name = _ok(client.post(INSTANCES, {"name": "b", "image": "fail-boot"}, format="json"), 202)
    assert by_id["image_name"] == by_name["image_name"] == "fail-boot"


# --- rule 5: one action at a time, quota --------------------------------------------------------------


def test_second_action_while_one_is_pending_is_409(demo, api, launch):
    instance = launch(demo.alice, name="web")
    client = api(demo.alice)
    url = f"{INSTANCES}{instance.pk}/"
    accepted = _ok(client.post(f"{url}action/", {"action": "reboot"}, format="json"), 202)
    assert accepted["instance"]["task_state"] == "rebooting"
    assert accepted["instance"]["status"] == "REBOOTING"
    before = _counts()
    assert client.post(f"{url}action/", {"action": "stop"}, format="json").status_code == 409
    assert client.post(f"{url}action/", {"action": "reboot"}, format="json").status_code == 409
    body = _error(client.delete(url), 409, "detail")
    assert "busy" in body["detail"]
    assert _counts() == before
    assert _ok(client.get(url))["allowed_operations"] == []


def test_action_on_an_instance_still_building_is_409(demo, api):
    client = api(demo.alice)
    building = _ok(client.post(INSTANCES, {"name": "web"}, format="json"), 202)
    assert client.post(f"{INSTANCES}{building['id']}/action/", {"action": "reboot"}, format="json").status_code == 409


def test_stop_start_and_reboot_of_a_stopped_instance(demo, api, launch, run_tasks):
    instance = launch(demo.alice, name="web")
    client = api(demo.alice)
    url = f"{INSTANCES}{instance.pk}/"
    with run_tasks():
        _ok(client.post(f"{url}action/", {"action": "stop"}, format="json"), 202)
    assert _ok(client.get(url))["status"] == "STOPPED"
    assert SimServer.objects.get(pk=instance.backend_id).status == "SHUTOFF"

    body = _error(client.post(f"{url}action/", {"action": "reboot"}, format="json"), 409, "detail")
    assert "STOPPED" in body["detail"]
    assert client.post(f"{url}action/", {"action": "stop"}, format="json").status_code == 409

    with run_tasks():
        _ok(client.post(f"{url}action/", {"action": "start"}, format="json"), 202)
    assert _ok(client.get(url))["status"] == "ACTIVE"


def test_quota_exceeded_is_409_and_writes_nothing(demo, api):
    client = api(demo.alice)
    before = _counts()
    body = _error(client.post(INSTANCES, {"name": "s", "category": "vsa", "count": 4}, format="json"), 409, "count")
    assert "Quota" in body["detail"]
    assert _counts() == before

    _ok(client.post(INSTANCES, {"name": "s", "category": "vsa", "count": 3}, format="json"), 202)
    middle = _counts()
    _error(client.post(INSTANCES, {"name": "t", "category": "vsa"}, format="json"), 409, "count")
    assert _counts() == middle
    # The quota is per project: globex still has room.
    _ok(api(demo.bob).post(INSTANCES, {"name": "s", "category": "vsa"}, format="json"), 202)


def test_terminated_instances_free_their_quota(demo, api, launch, run_tasks):
    first, *_ = [launch(demo.alice, name=f"s{n}", category="vsa") for n in range(3)]
    client = api(demo.alice)
    _error(client.post(INSTANCES, {"name": "s4", "category": "vsa"}, format="json"), 409, "count")
    with run_tasks():
        _ok(client.delete(f"{INSTANCES}{first.pk}/"), 202)
    _ok(client.post(INSTANCES, {"name": "s4", "category": "vsa"}, format="json"), 202)


def test_count_two_creates_two(demo, api, run_tasks):
    client = api(demo.alice)
    with run_tasks():
        body = _ok(client.post(INSTANCES, {"name": "web", "count": 2}, format="json"), 202)
    assert [i["name"] for i in body["instances"]] == ["web-1", "web-2"]
    assert body["id"] == body["instances"][0]["id"]
    listed = _ok(client.get(INSTANCES))["results"]
    assert sorted((i["name"], i["status"]) for i in listed) == [("web-1", "ACTIVE"), ("web-2", "ACTIVE")]
    assert SimServer.objects.count() == 2


# --- rule 6: every request ends in a terminal state; history stays -------------------------------------


def test_events_list_the_launch(demo, api, launch):
    instance = launch(demo.alice, name="web")
    events = _ok(api(demo.alice).get(f"{INSTANCES}{instance.pk}/events/"))["results"]
    assert [e["event"] for e in events] == ["requested", "spawning", "finished"]
    assert {e["action"] for e in events} == {"launch"}
    assert events[0]["requested_by"] == "alice"
    assert events[-1]["result"] == "success"
    assert events[-1]["action_status"] == "succeeded"


def test_terminate_soft_deletes(demo, api, launch, run_tasks):
    instance = launch(demo.alice, name="web")
    client = api(demo.alice)
    url = f"{INSTANCES}{instance.pk}/"
    with run_tasks():
        accepted = _ok(client.delete(url), 202)
    assert accepted["action"] == "terminate"
    assert accepted["instance"]["status"] == "DELETING"

    shown = _ok(client.get(url))
    assert shown["status"] == "DELETED"
    assert shown["deleted_at"]
    assert shown["allowed_operations"] == []
    assert str(instance.pk) not in _ids(client.get(INSTANCES))
    assert _ids(client.get(INSTANCES, {"status": "DELETED"})) == {str(instance.pk)}
    assert not SimServer.objects.filter(instance_uuid=instance.pk).exists()
    events = [e["event"] for e in _ok(client.get(f"{url}events/"))["results"]]
    assert events[:3] == ["requested", "spawning", "finished"]
    assert events[3:] == ["requested", "backend_called", "finished"]
    # A second terminate is a conflict, not a crash.
    assert client.delete(url).status_code == 409


def test_fail_boot_image_ends_in_error_with_a_fault(demo, api, launch):
    instance = launch(demo.alice, name="broken", image="fail-boot")
    client = api(demo.alice)
    body = _ok(client.get(f"{INSTANCES}{instance.pk}/"))
    assert body["status"] == "ERROR"
    assert body["task_state"] == ""
    assert body["fault"] == "The instance ran into an error; the provider has been told."
    assert body["allowed_operations"] == ["terminate"]
    events = _ok(client.get(f"{INSTANCES}{instance.pk}/events/"))["results"]
    assert events[-1]["event"] == "failed"
    assert events[-1]["result"] == "error"
    assert events[-1]["action_status"] == "failed"
    # The backend's own text is the provider admin's to read.
    assert "fail-boot" in _ok(api(demo.admin).get(f"{INSTANCES}{instance.pk}/"))["fault"]
    assert "fail-boot" in _ok(api(demo.admin).get(f"{INSTANCES}{instance.pk}/events/"))["results"][-1]["message"]


# --- authentication and tenancy ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", INSTANCES),
        ("post", INSTANCES),
        ("get", "/api/v1/me/"),
        ("get", "/api/v1/projects/"),
        ("get", "/api/v1/flavors/"),
    ],
)
def test_unauthenticated_is_401(demo, api, method, path):
    response = getattr(api(), method)(path, {"name": "x"} if method == "post" else None, format="json")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Token")
    assert not Instance.objects.exists()


def test_token_auth(demo):
    client = APIClient()
    bad = client.post("/api/v1/auth/token/", {"username": "alice", "password": "wrong"}, format="json")
    assert bad.status_code == 400
    password = settings.ADMINVMS["DEMO_PASSWORD"]  # the demo fixture's
    token = _ok(client.post("/api/v1/auth/token/", {"username": "alice", "password": password}, format="json"))
    client.credentials(HTTP_AUTHORIZATION=f"Token {token['token']}")
    assert _ok(client.get("/api/v1/me/"))["username"] == "alice"
    assert _ok(client.post(INSTANCES, {"name": "by-token"}, format="json"), 202)["project"] == "acme"
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    assert client.get("/api/v1/me/").status_code == 401


def test_me(demo, api):
    assert _ok(api(demo.alice).get("/api/v1/me/")) == {
        "username": "alice",
        "is_provider_admin": False,
        "memberships": [{"project": "acme", "role": "member"}],
    }
    assert _ok(api(demo.gina).get("/api/v1/me/"))["memberships"] == [{"project": "globex", "role": "reader"}]
    admin = _ok(api(demo.admin).get("/api/v1/me/"))
    assert admin["is_provider_admin"] is True


def test_projects_show_only_own_projects(demo, api):
    def listed(user):
        return {(p["slug"], p["role"]) for p in _ok(api(user).get("/api/v1/projects/"))["results"]}

    assert listed(demo.alice) == {("acme", "member")}
    assert listed(demo.rita) == {("acme", "reader")}
    assert listed(demo.bob) == {("globex", "member")}
    assert listed(demo.admin) == {("acme", "admin"), ("globex", "admin")}
    assert api(demo.alice).get("/api/v1/projects/globex/").status_code == 404
    assert _ok(api(demo.alice).get("/api/v1/projects/acme/"))["role"] == "member"


# --- pagination --------------------------------------------------------------------------------------


def _bulk(demo, n, category="standard", project=None):
    standard = demo.categories[category]
    Instance.objects.bulk_create(
        Instance(name=f"bulk-{i:04d}", category=standard, project=project or demo.acme, status="ACTIVE", backend="sim")
        for i in range(n)
    )


def test_pagination_page_size(demo, api):
    _bulk(demo, 12)
    client = api(demo.alice)
    first = _ok(client.get(INSTANCES, {"page_size": 5}))
    assert first["count"] == 12
    assert len(first["results"]) == 5
    assert first["next"] and first["previous"] is None
    last = _ok(client.get(INSTANCES, {"page_size": 5, "page": 3}))
    assert len(last["results"]) == 2
    assert last["next"] is None
    seen = {i["id"] for p in (1, 2, 3) for i in _ok(client.get(INSTANCES, {"page_size": 5, "page": p}))["results"]}
    assert len(seen) == 12
    assert client.get(INSTANCES, {"page_size": 5, "page": 4}).status_code == 404


def test_page_size_is_capped_at_1000(demo, api):
    _bulk(demo, 1001)
    body = _ok(api(demo.admin).get(INSTANCES, {"page_size": 5000}))
    assert body["count"] == 1001
    assert len(body["results"]) == 1000


# --- bad input never gives 500 ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": ["a", "b"]}, "name"),
        ({"name": {"x": 1}}, "name"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 241}, "name"),
        ({}, "name"),
        ({"name": "x", "count": "x"}, "count"),
        ({"name": "x", "count": 0}, "count"),
        ({"name": "x", "count": 10_000}, "count"),
        ({"name": "x", "count": [1]}, "count"),
        ({"name": "x", "category": {"slug": "vsa"}}, "category"),
        ({"name": "x", "category": ["vsa"]}, "category"),
        ({"name": "x", "flavor": [1]}, "flavor"),
        ({"name": "x", "flavor": 3}, "flavor"),
        ({"name": "x", "image": 5}, "image"),
        ({"name": "x", "image": ["debian-12"]}, "image"),
        ({"name": "x", "project": ["acme"]}, "project"),
        ({"name": "x", "project": True}, "project"),
        # PostgreSQL refuses NUL characters in text; they must be bad input, not a database error.
        ({"name": "x\x00"}, "name"),
        ({"name": "x", "category": "vsa\x00"}, "category"),
        ({"name": "x", "flavor": "m1.small\x00"}, "flavor"),
        ({"name": "x", "image": "debian-12\x00"}, "image"),
        ({"name": "x", "project": "acme\x00"}, "project"),
    ],
)
def test_garbage_launch_is_400_naming_the_field(demo, api, body, field):
    _error(api(demo.alice).post(INSTANCES, body, format="json"), 400, field)
    assert not Instance.objects.exists()


@pytest.mark.parametrize("body", [[{"name": "x"}], "just a string", 42, None])
def test_launch_body_that_is_not_an_object_is_400(demo, api, body):
    response = api(demo.alice).post(INSTANCES, body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()
    assert not Instance.objects.exists()


def test_unparseable_json_is_400(demo, api):
    response = api(demo.alice).post(INSTANCES, '{"name": ', content_type="application/json")
    assert response.status_code == 400
    assert "detail" in response.json()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"action": "explode"}, "action"),
        ({"action": "terminate"}, "action"),
        ({"action": ["reboot"]}, "action"),
        ({}, "action"),
        ({"action": "reboot", "hard": "maybe"}, "hard"),
        ({"action": "reboot", "hard": [True]}, "hard"),
    ],
)
def test_garbage_action_is_400_naming_the_field(demo, api, body, field):
    instance = InstanceFactory(project=demo.acme)
    _error(api(demo.alice).post(f"{INSTANCES}{instance.pk}/action/", body, format="json"), 400, field)
    assert not instance.actions.exists()


@pytest.mark.parametrize("body", [["reboot"], "reboot", 1])
def test_action_body_that_is_not_an_object_is_400(demo, api, body):
    instance = InstanceFactory(project=demo.acme)
    response = api(demo.alice).post(f"{INSTANCES}{instance.pk}/action/", body, format="json")
    assert response.status_code == 400, response.content
    assert not instance.actions.exists()


@pytest.mark.parametrize(
    "params",
    [
        {"page_size": "lots"},
        {"page_size": -1},
        {"status": ""},
        {"category": ""},
        {"name": "%"},
        {"created_at": "yesterday"},
    ],
)
def test_odd_query_parameters_do_not_crash(demo, api, params):
    InstanceFactory(project=demo.acme)
    assert api(demo.alice).get(INSTANCES, params).status_code == 200


@pytest.mark.parametrize("param", ["category", "status", "project", "name", "backend"])
def test_nul_in_a_query_parameter_is_400(demo, api, param):
    _error(api(demo.alice).get(INSTANCES, {param: "a\x00"}), 400, param)


@pytest.mark.parametrize("path", ["/api/v1/projects/acme%00/", "/api/v1/instances/%00/", "/api/v1/images/%00/"])
def test_nul_in_a_path_is_404(demo, api, path):
    assert api(demo.alice).get(path).status_code == 404


def test_page_out_of_range_is_404_not_500(demo, api):
    assert api(demo.alice).get(INSTANCES, {"page": "abc"}).status_code == 404


@pytest.mark.parametrize("method", ["put", "patch"])
def test_instances_cannot_be_edited(demo, api, method):
    instance = InstanceFactory(project=demo.acme, name="web")
    response = getattr(api(demo.admin), method)(f"{INSTANCES}{instance.pk}/", {"name": "renamed"}, format="json")
    assert response.status_code == 405
    instance.refresh_from_db()
    assert instance.name == "web"


@pytest.mark.parametrize(
    "name",
    ["x" * 201, "web\n1", "tab\there", "bell\x07", "zero\u200bwidth"],
    ids=["longer-than-a-port-name-allows", "newline", "tab", "control", "format-char"],
)
def test_a_name_no_backend_takes_is_400_at_the_request(demo, api, name):
    """Not an ERROR later at Neutron ("adminvms-<name>-management" is at most 255) or Nova."""
    _error(api(demo.alice).post(INSTANCES, {"name": name}, format="json"), 400, "name")
    assert not Instance.objects.exists()


def test_launch_keeps_the_users_tags_and_refuses_reserved_ones(api, demo):
    client = api(demo.alice)
    answer = client.post("/api/v1/instances/", {"name": "tagged", "tags": {"env": "prod"}}, format="json")
    assert answer.status_code == 202, answer.content
    assert answer.json()["tags"] == {"env": "prod"}
    refused = client.post("/api/v1/instances/", {"name": "x", "tags": {"adminvms:category": "lb"}}, format="json")
    assert refused.status_code == 400 and "tags" in refused.json()
    assert client.post("/api/v1/instances/", {"name": "x", "tags": {"k": "\x00"}}, format="json").status_code == 400
    assert Instance.objects.filter(name="x").count() == 0


# --- lists at scale: the lean representation is DRF's -------------------------------------------


def test_the_lists_representation_is_drfs_for_every_kind_of_row_and_caller(demo, api, spread):
    """The serializer builds each row without DRF's generic field machinery (``_fields_of``, for lists of
    thousands): what it answers is exactly what DRF's ModelSerializer makes of the same fields, through
    the same restrictions, for admins, members and readers, on plain, faulty, unhealthy, busy and spare
    rows, with the buttons each may press."""
    from django.utils import timezone
    from rest_framework import serializers
    from rest_framework.renderers import JSONRenderer
    from rest_framework.request import Request
    from rest_framework.test import APIRequestFactory

    from instances.api.serializers import InstanceSerializer
    from instances.presentation import present_instance

    now = timezone.now()
    Instance.objects.filter(pk=spread["acme-vsa"].pk).update(
        health="unhealthy", health_failures=3, health_since=now, health_error="GET http://10.9.9.9: refused",
        fault="nova: boom on host-7", status="ERROR", management_endpoint="10.9.9.9:443",
        metadata={"adminvms:instance": "x"}, tags={"team": "a"},
        addresses={"project": ["10.0.0.5"], "management": ["172.31.0.9"]},
    )  # fmt: skip
    Instance.objects.filter(pk=spread["acme-standard"].pk).update(task_state="rebooting", status="REBOOTING")
    Instance.objects.filter(pk=spread["acme-lb"].pk).update(is_spare=True, launched_at=now, deleted_at=now, image=None)
    rows = list(Instance.objects.for_list().order_by("name"))

    def generic(serializer, instance):  # DRF's own walk over the same fields, then the same restrictions
        data = serializers.ModelSerializer.to_representation(serializer, instance)
        return present_instance(data, user=serializer.context["request"].user, instance=instance)

    for user in (demo.admin, demo.alice, demo.rita, demo.bob):
        request = Request(APIRequestFactory().get(INSTANCES))
        request.user = user
        lean = InstanceSerializer(rows, many=True, context={"request": request})
        drf = InstanceSerializer(context={"request": request})
        assert list(lean.child._fields_of(rows[0])) == InstanceSerializer.Meta.fields
        expected = [generic(drf, row) for row in rows]
        assert JSONRenderer().render(lean.data) == JSONRenderer().render(expected), user.username


def test_next_links_walk_the_list_once_in_order_with_any_ordering(demo, api):
    """``next`` links carry a cursor (the page continues after the last row shown): following them gives
    every row exactly once, in the order of ``?page=N``, for the default ordering and a chosen one, with
    ties (same name, same created_at) broken by id; ``previous`` goes back by page number."""
    _bulk(demo, 23)
    Instance.objects.filter(name__in=["bulk-0003", "bulk-0004", "bulk-0005"]).update(name="twin")
    client = api(demo.alice)
    for ordering in ("", "name", "-status"):
        params = {"page_size": 5, **({"ordering": ordering} if ordering else {})}
        by_number = [
            [i["id"] for i in _ok(client.get(INSTANCES, {**params, "page": n}))["results"]] for n in range(1, 6)
        ]
        walked, body = [], _ok(client.get(INSTANCES, params))
        while True:
            walked.append([i["id"] for i in body["results"]])
            assert body["count"] == 23
            if not body["next"]:
                break
            assert "cursor=" in body["next"] and "page=" not in body["next"].replace("page_size", "")
            body = _ok(client.get(body["next"]))
            assert "cursor=" not in body["previous"]
            back = _ok(client.get(body["previous"]))
            assert [i["id"] for i in back["results"]] == walked[-1]
        assert walked == by_number, ordering


def test_a_cursor_from_elsewhere_is_400_naming_it(demo, api):
    _bulk(demo, 12)
    client = api(demo.alice)
    cursor = _ok(client.get(INSTANCES, {"page_size": 5}))["next"].split("cursor=")[1]
    _error(client.get(INSTANCES, {"page_size": 5, "cursor": "forged"}), 400, "cursor")
    _error(client.get(INSTANCES, {"page_size": 5, "cursor": cursor, "ordering": "name"}), 400, "cursor")
    _error(client.get(INSTANCES, {"page_size": 5, "cursor": cursor[:-3] + "abc"}), 400, "cursor")


def test_a_long_lists_count_is_kept_for_the_counts_interval(demo, api, settings):
    """A list of at least COUNTS_EXACT_BELOW rows keeps its count for COUNTS_INTERVAL seconds (counting
    100,000 rows on every page costs more than the page); a shorter list is counted every time."""
    from django.core.cache import cache

    settings.ADMINVMS = {**settings.ADMINVMS, "COUNTS_EXACT_BELOW": 10, "COUNTS_INTERVAL": 30}
    cache.clear()
    try:
        _bulk(demo, 8)
        client = api(demo.alice)
        assert _ok(client.get(INSTANCES, {"page_size": 5}))["count"] == 8
        _bulk(demo, 4)
        assert _ok(client.get(INSTANCES, {"page_size": 5}))["count"] == 12  # 8 was short: counted again
        _bulk(demo, 1)
        body = _ok(client.get(INSTANCES, {"page_size": 5}))
        assert body["count"] == 12  # kept
        assert _ok(client.get(INSTANCES, {"page_size": 5, "status": "ACTIVE,BUILDING"}))["count"] == 13
        cache.clear()  # the interval is over
        assert _ok(client.get(INSTANCES, {"page_size": 5}))["count"] == 13
    finally:
        cache.clear()
