"""Health, heals, the auto-heal breaker and rollouts as the API, the console and the portal show them.

Everything runs on the simulated cloud through the real services; a test kills an appliance's
process (its probes stop answering) as an operator's accident would.
"""

from __future__ import annotations

import re

import pytest
from django.utils.html import escape

from instances import services
from instances.choices import Health, RolloutStatus, Status, TaskState
from instances.drivers.sim.models import SimServer
from instances.models import HealBreaker, Instance, Rollout
from tests.factories import ImageFactory, InstanceFactory

INSTANCES = "/api/v1/instances/"
ROLLOUTS = "/api/v1/rollouts/"
BREAKERS = "/api/v1/heal-breakers/"
HEALTH_DETAILS = {"health_failures", "health_since", "health_checked_at", "health_error", "generation"}
MAINTENANCE = "Maintenance: this appliance is being moved to a new server; its GUI may be unavailable for a moment."


def _ok(response, code=200):
    assert response.status_code == code, (response.status_code, response.content[:500])
    return response.json() if response.get("Content-Type", "").startswith("application/json") else response


def _error(response, code, field=None):
    assert response.status_code == code, (response.status_code, response.content[:500])
    body = response.json()
    if field:
        assert field in body or body.get("field") == field, body
    return body


@pytest.fixture
def fleet(demo, run_tasks, settings):
    """The vsa category health-checked on the sim, without auto-heal (the tests heal by hand);
    ``fleet.launch(n)`` → ACTIVE vsas of acme, ``fleet.kill(i)`` stops an appliance answering probes."""
    settings.ADMINVMS = {**settings.ADMINVMS, "HEALTH_CHECK_RETRY": 0, "BUILD_RATE_LIMIT": 50}
    vsa = demo.categories["vsa"]
    vsa.backend, vsa.health_check_port, vsa.health_check_path = "sim", 8080, "/health"
    vsa.health_check_threshold, vsa.auto_heal, vsa.max_instances = 2, False, None
    vsa.health_check_grace = 0  # probed at once after the boot
    vsa.save()

    class Fleet:
        category = vsa

        @staticmethod
        def launch(n, *, name="vsa", user=None):
            with run_tasks():
                made = services.instance_launch(
                    user=user or demo.alice, name=name, project=demo.acme, category=vsa, count=n
                )
            return [Instance.objects.get(pk=i.pk) for i in made]

        @staticmethod
        def kill(*instances):
            SimServer.objects.filter(pk__in=[i.backend_id for i in instances]).update(answers_probes=False)

        @staticmethod
        def tick():
            with run_tasks():
                return services.fleet_run()

    return Fleet


@pytest.fixture
def failing(fleet):
    """An ACTIVE vsa of acme whose probes failed once: ``failing``, with the probe's error."""
    [vsa] = fleet.launch(1)
    services.health_check()
    fleet.kill(vsa)
    services.health_check()
    vsa.refresh_from_db()
    assert vsa.health == Health.FAILING and "Connection refused" in vsa.health_error
    return vsa


@pytest.fixture
def breaker(demo):
    """An open auto-heal breaker for the vsa category, and an older one an admin resumed."""
    HealBreaker.objects.create(
        scope="backend", key="sim", unhealthy=2, total=4, reason="2 of 4 on sim, long ago.",
        resumed_at="2026-01-01T00:00:00Z", resumed_by=demo.admin,
    )  # fmt: skip
    return HealBreaker.objects.create(
        scope="category", key="vsa", unhealthy=3, total=5,
        reason="3 of 5 auto-healed instances of category 'vsa' turned unhealthy within 300 s.",
    )  # fmt: skip


@pytest.fixture
def spare(demo):
    """A ready spare of the lb pool, in the provider's spare project."""
    lb = demo.categories["lb"]
    lb.spare_pool_size = 2
    lb.save()
    return InstanceFactory(
        name="spare-lb", category=lb, project=services.spare_project(), is_spare=True, backend_id="spare-server"
    )


# --- the instance representation -------------------------------------------------------------


def test_admins_read_the_whole_health_members_of_an_appliance_only_degraded(demo, api, failing):
    admin = _ok(api(demo.admin).get(f"{INSTANCES}{failing.pk}/"))
    assert (admin["health"], admin["health_failures"], admin["generation"], admin["is_spare"]) == (
        "failing", 1, 0, False,
    )  # fmt: skip
    assert "Connection refused" in admin["health_error"] and admin["health_since"] and admin["health_checked_at"]

    for member in (demo.alice, demo.rita):
        response = api(member).get(f"{INSTANCES}{failing.pk}/")
        body = _ok(response)
        assert body["restricted"] is True and body["health"] == "degraded"
        assert not (HEALTH_DETAILS | {"is_spare"}) & set(body), body
        assert b"Connection refused" not in response.content
        listed = _ok(api(member).get(INSTANCES, {"category": "vsa"}))["results"]
        assert [(i["id"], i["health"]) for i in listed] == [(str(failing.pk), "degraded")]


def test_members_read_unhealthy_as_degraded_healthy_as_healthy_and_nothing_before_a_probe(demo, api, fleet, failing):
    [healthy, fresh] = fleet.launch(2, name="other")
    Instance.objects.filter(pk=healthy.pk).update(name="healthy")
    Instance.objects.filter(pk=fresh.pk).update(name="fresh")
    services.health_check()  # failing turns unhealthy (threshold 2), the others healthy
    Instance.objects.filter(pk=fresh.pk).update(health="")  # as if not probed yet
    assert Instance.objects.get(pk=failing.pk).health == Health.UNHEALTHY
    shown = {i["name"]: i["health"] for i in _ok(api(demo.alice).get(INSTANCES, {"category": "vsa"}))["results"]}
    assert shown == {"vsa": "degraded", "fresh": None, "healthy": "healthy"}
    admin = {i["name"]: i["health"] for i in _ok(api(demo.admin).get(INSTANCES, {"category": "vsa"}))["results"]}
    assert admin == {"vsa": "unhealthy", "fresh": "", "healthy": "healthy"}


def test_a_members_own_standard_instance_shows_the_details_but_not_the_probes_error(demo, api, run_tasks):
    standard = demo.categories["standard"]
    standard.health_check_port, standard.health_check_grace = 8080, 0
    standard.save()
    with run_tasks():
        [web] = services.instance_launch(user=demo.alice, name="web", project=demo.acme)
    web.refresh_from_db()
    SimServer.objects.filter(pk=web.backend_id).update(answers_probes=False)
    services.health_check()
    response = api(demo.alice).get(f"{INSTANCES}{web.pk}/")
    body = _ok(response)
    assert body["restricted"] is False and body["health"] == "failing" and body["health_failures"] == 1
    assert body["health_error"] == "The health check failed." and "is_spare" not in body
    assert b"Connection refused" not in response.content


def test_health_events_read_degraded_and_carry_no_error_text_for_members(demo, api, failing):
    response = api(demo.alice).get(f"{INSTANCES}{failing.pk}/events/")
    events = [(e["event"], e["message"]) for e in _ok(response)["results"]]
    assert ("health_degraded", "The health check failed.") in events
    assert b"health_failing" not in response.content and b"Connection refused" not in response.content
    admin = [e["event"] for e in _ok(api(demo.admin).get(f"{INSTANCES}{failing.pk}/events/"))["results"]]
    assert "health_failing" in admin


def test_spares_show_to_provider_admins_only(demo, api, web, spare):
    assert _ok(api(demo.admin).get(f"{INSTANCES}{spare.pk}/"))["is_spare"] is True
    for member in (demo.alice, demo.bob, demo.rita):
        _error(api(member).get(f"{INSTANCES}{spare.pk}/"), 404)
        for category in ("lb", "standard"):
            assert str(spare.pk) not in {
                i["id"] for i in _ok(api(member).get(INSTANCES, {"category": category}))["results"]
            }
        page = web(member).get("/portal/appliances/")
        assert page.status_code == 200 and b"spare-lb" not in page.content
    assert web(demo.alice).get(f"/portal/appliances/{spare.pk}/").status_code == 404


# --- heal as an action -----------------------------------------------------------------------


def test_admins_heal_through_the_action_endpoint_members_may_not(demo, api, run_tasks, failing):
    _error(api(demo.alice).post(f"{INSTANCES}{failing.pk}/action/", {"action": "heal"}, format="json"), 403)
    with run_tasks():
        body = _ok(api(demo.admin).post(f"{INSTANCES}{failing.pk}/action/", {"action": "heal"}, format="json"), 202)
    assert body["action"] == "heal" and body["instance"]["task_state"] == "healing"
    healed = Instance.objects.get(pk=failing.pk)
    assert (healed.status, healed.task_state, healed.generation) == (Status.ACTIVE, "", 1)
    assert healed.backend_id != failing.backend_id


def test_replace_is_the_rollouts_alone(demo, api, failing):
    for user in (demo.admin, demo.alice):
        _error(api(user).post(f"{INSTANCES}{failing.pk}/action/", {"action": "replace"}, format="json"), 400, "action")
    assert Instance.objects.get(pk=failing.pk).task_state == ""


# --- rollouts and breakers through the API ---------------------------------------------------


def test_rollouts_and_breakers_are_the_provider_admins(demo, api, fleet, breaker):
    image = ImageFactory(name="vsa-2", tags=["vsa"])
    rollout = services.rollout_start(user=demo.admin, category=fleet.category, image=image)
    for member in (demo.alice, demo.rita, demo.bob):
        client = api(member)
        for url in (ROLLOUTS, f"{ROLLOUTS}{rollout.pk}/", BREAKERS):
            _error(client.get(url), 403)
        _error(client.post(ROLLOUTS, {"category": "vsa"}, format="json"), 403)
        for verb in ("pause", "resume", "abort"):
            _error(client.post(f"{ROLLOUTS}{rollout.pk}/{verb}/"), 403)
        _error(client.post(f"{BREAKERS}{breaker.pk}/resume/"), 403)
    for url in (ROLLOUTS, BREAKERS):
        assert api().get(url).status_code == 401
    assert Rollout.objects.count() == 1 and Rollout.objects.get().status == RolloutStatus.RUNNING
    assert HealBreaker.objects.get(pk=breaker.pk).is_open


def test_an_admin_starts_pauses_resumes_and_aborts_a_rollout(demo, api, fleet):
    fleet.launch(2)
    new = ImageFactory(name="vsa-2.0", kind=fleet.category.kind, tags=["vsa"])
    client = api(demo.admin)
    _error(client.post(ROLLOUTS, {"category": "vsa", "batch_size": 0}, format="json"), 400, "batch_size")
    _error(client.post(ROLLOUTS, {"category": "nope"}, format="json"), 400, "category")
    _error(client.post(ROLLOUTS, {"category": "vsa", "image": "no-such-image"}, format="json"), 400, "image")
    body = _ok(client.post(ROLLOUTS, {"category": "vsa", "batch_size": 2, "pause_seconds": 5}, format="json"), 201)
    assert (body["category"], body["image"], body["image_name"], body["status"]) == (
        "vsa",
        str(new.pk),
        "vsa-2.0",
        "running",
    )
    assert (body["batch_size"], body["pause_seconds"], body["total"], body["created_by"]) == (2, 5, 2, "admin")
    assert body["progress"] == {"succeeded": 0, "failed": 0, "running": 0}
    url = f"{ROLLOUTS}{body['id']}/"
    assert _ok(client.get(url))["id"] == body["id"]
    assert [r["id"] for r in _ok(client.get(ROLLOUTS))["results"]] == [body["id"]]
    _error(client.post(ROLLOUTS, {"category": "vsa", "image": str(new.pk)}, format="json"), 409)
    assert _ok(client.post(f"{url}pause/"))["status"] == "paused"
    assert _error(client.post(f"{url}pause/"), 409)["code"] == "conflict"
    assert _ok(client.post(f"{url}resume/"))["status"] == "running"
    aborted = _ok(client.post(f"{url}abort/"))
    assert aborted["status"] == "aborted" and aborted["finished_at"] and "Aborted" in aborted["message"]
    _error(client.post(f"{url}resume/"), 409)
    _error(client.get(f"{ROLLOUTS}00000000-0000-0000-0000-000000000000/"), 404)


def test_a_rollout_shows_its_progress_until_it_succeeds(demo, api, fleet):
    fleet.category.health_check_port = None
    fleet.category.save()
    fleet.launch(3)
    new = ImageFactory(name="vsa-3.0", kind=fleet.category.kind, tags=["vsa"])
    client = api(demo.admin)
    body = _ok(client.post(ROLLOUTS, {"category": "vsa", "image": "vsa-3.0", "batch_size": 2}, format="json"), 201)
    fleet.tick()
    shown = _ok(client.get(f"{ROLLOUTS}{body['id']}/"))
    assert shown["progress"] == {"succeeded": 2, "failed": 0, "running": 0} and shown["status"] == "running"
    fleet.tick()
    fleet.tick()
    shown = _ok(client.get(f"{ROLLOUTS}{body['id']}/"))
    assert shown["status"] == "succeeded" and shown["progress"] == {"succeeded": 3, "failed": 0, "running": 0}
    assert Instance.objects.filter(category=fleet.category, image=new).count() == 3


def test_breakers_list_open_first_and_an_admin_resumes_one(demo, api, breaker):
    client = api(demo.admin)
    older_open = HealBreaker.objects.create(scope="backend", key="docker", unhealthy=2, total=2, reason="docker")
    HealBreaker.objects.filter(pk=older_open.pk).update(opened_at="2026-02-01T00:00:00Z")
    listed = _ok(client.get(BREAKERS))["results"]
    assert [(b["key"], b["is_open"]) for b in listed] == [("vsa", True), ("docker", True), ("sim", False)]
    assert listed[2]["resumed_by"] == "admin" and listed[0]["resumed_by"] is None
    resumed = _ok(client.post(f"{BREAKERS}{breaker.pk}/resume/"))
    assert resumed["is_open"] is False and resumed["resumed_by"] == "admin" and resumed["resumed_at"]
    assert _error(client.post(f"{BREAKERS}{breaker.pk}/resume/"), 409)["code"] == "conflict"
    _error(client.post(f"{BREAKERS}999999/resume/"), 404)
    assert _ok(client.get(BREAKERS))["results"][0]["key"] == "docker"


# --- the console -----------------------------------------------------------------------------


def test_the_breaker_banner_shows_on_every_console_page_and_an_admin_resumes_auto_heal(demo, web, breaker):
    admin = web(demo.admin)
    for url in ("/console/", "/console/instances/", "/console/categories/", "/console/rollouts/", "/launch/"):
        page = admin.get(url)
        assert page.status_code == 200
        banner = _banner(page)
        assert escape(breaker.reason) in banner and "Resume auto-heal" in banner
        assert banner.count('data-breaker="') == 1 and "2 of 4 on sim" not in banner  # the open one only
    response = admin.post(f"/console/heal-breakers/{breaker.pk}/resume/", {"next": "/console/instances/"})
    assert response.status_code == 302 and response["Location"] == "/console/instances/"
    assert not HealBreaker.objects.get(pk=breaker.pk).is_open
    page = admin.get("/console/instances/")
    assert b'id="breaker-banner"' not in page.content and b"Auto-heal resumed for category" in page.content
    # Twice: the service says it was resumed already.
    admin.post(f"/console/heal-breakers/{breaker.pk}/resume/")
    assert b"resumed already" in admin.get("/console/").content


def _banner(page) -> str:
    match = re.search(r'id="breaker-banner">(.*?)\n</div>', page.content.decode(), re.DOTALL)
    assert match, "no breaker banner"
    return match.group(1)


def test_members_see_no_banner_and_may_not_resume(demo, web, breaker):
    member = web(demo.alice)
    assert b"breaker-banner" not in member.get("/portal/").content
    assert member.post(f"/console/heal-breakers/{breaker.pk}/resume/").status_code == 403
    assert member.get("/console/rollouts/").status_code == 403
    assert HealBreaker.objects.get(pk=breaker.pk).is_open
    assert web().get("/console/rollouts/").status_code == 302


def test_the_rollouts_page_starts_pauses_resumes_and_aborts_a_rollout(demo, web, fleet):
    fleet.launch(2)
    new = ImageFactory(name="vsa-2.0", kind=fleet.category.kind, tags=["vsa"])
    admin = web(demo.admin)
    assert b'href="/console/rollouts/"' in admin.get("/console/").content  # the nav link
    page = admin.get("/console/rollouts/")
    assert page.status_code == 200 and b"Newest image tagged for the category" in page.content
    response = admin.post("/console/rollouts/", {"category": "vsa", "image": "", "batch_size": 1, "pause_seconds": 0})
    assert response.status_code == 302
    rollout = Rollout.objects.get()
    assert (rollout.image, rollout.total, rollout.batch_size) == (new, 2, 1)
    page = admin.get("/console/rollouts/").content.decode()
    assert f'id="rollout-{rollout.pk}"' in page and 'data-status="running"' in page
    assert f'hx-get="/console/rollouts/{rollout.pk}/row/"' in page  # a running row polls
    assert 'data-verb="pause"' in page and 'data-verb="abort"' in page and 'data-verb="resume"' not in page
    htmx = {"HTTP_HX_REQUEST": "true"}
    row = admin.post(f"/console/rollouts/{rollout.pk}/pause/", **htmx).content.decode()
    assert 'data-status="paused"' in row and "hx-get" not in row and 'data-verb="resume"' in row
    row = admin.post(f"/console/rollouts/{rollout.pk}/pause/", **htmx).content.decode()
    assert "cannot pause" in row  # the service's refusal, on the row
    row = admin.post(f"/console/rollouts/{rollout.pk}/resume/", **htmx).content.decode()
    assert 'data-status="running"' in row
    response = admin.post(f"/console/rollouts/{rollout.pk}/abort/")
    assert response.status_code == 302
    assert Rollout.objects.get().status == RolloutStatus.ABORTED
    row = admin.get(f"/console/rollouts/{rollout.pk}/row/").content.decode()
    assert 'data-status="aborted"' in row and "data-verb" not in row and "Aborted by admin" in row


def test_the_rollouts_page_shows_the_services_refusal_on_the_field(demo, web, fleet):
    admin = web(demo.admin)
    page = admin.post("/console/rollouts/", {"category": "vsa", "batch_size": 0, "pause_seconds": 0})
    assert page.status_code == 200 and b'data-field="batch_size"' in page.content
    page = admin.post("/console/rollouts/", {"category": "cache", "batch_size": 1, "pause_seconds": 0})
    assert page.status_code == 200 and b'data-field="image"' in page.content
    assert not Rollout.objects.exists()


def test_a_rollout_row_shows_its_progress(demo, web, fleet):
    fleet.category.health_check_port = None
    fleet.category.save()
    fleet.launch(2)
    ImageFactory(name="vsa-2.0", kind=fleet.category.kind, tags=["vsa"])
    rollout = services.rollout_start(user=demo.admin, category=fleet.category)
    fleet.tick()
    row = web(demo.admin).get(f"/console/rollouts/{rollout.pk}/row/").content.decode()
    assert "1 succeeded · 0 failed · 0 running · of 2" in row
    fleet.tick()
    fleet.tick()
    row = web(demo.admin).get(f"/console/rollouts/{rollout.pk}/row/").content.decode()
    assert 'data-status="succeeded"' in row and "2 succeeded" in row and "hx-get" not in row


def test_the_instances_table_shows_health_and_marks_spares(demo, web, failing, spare):
    page = web(demo.admin).get("/console/instances/").content.decode()
    assert "<th>Health</th>" in page
    row = page.split(f'id="instance-{failing.pk}"')[1].split("</tr>")[0]
    assert 'data-health="failing"' in row and 'data-op="heal"' in row
    spare_row = page.split(f'id="instance-{spare.pk}"')[1].split("</tr>")[0]
    assert 'class="badge text-bg-light border spare"' in spare_row and 'data-health=""' in spare_row


def test_the_instance_page_shows_the_health_card_and_its_history(demo, web, fleet, failing):
    services.health_check()  # unhealthy now
    page = web(demo.admin).get(f"/console/instances/{failing.pk}/").content.decode()
    card = page.split('id="health-card"')[1].split('id="timeline"')[0]
    assert 'data-health="unhealthy"' in card and "Connection refused" in card
    assert 'id="health-failures">2<' in card and 'id="generation">0<' in card
    history = card.split('id="health-history"')[1]
    assert history.index("health_unhealthy") < history.index("health_failing")  # newest first


def test_the_appliance_page_shows_degraded_and_the_maintenance_notice_while_it_moves(demo, web, failing):
    member = web(demo.alice)
    page = member.get(f"/portal/appliances/{failing.pk}/").content.decode()
    card = page.split('id="health-card"')[1]
    assert 'data-health="degraded"' in card and "Consecutive failures" not in page
    assert "Connection refused" not in page and "health_failing" not in page and "health-history" not in page
    assert MAINTENANCE not in page
    for task_state in (TaskState.HEALING, TaskState.REPLACING):
        Instance.objects.filter(pk=failing.pk).update(task_state=task_state)
        assert MAINTENANCE in member.get(f"/portal/appliances/{failing.pk}/").content.decode()
    Instance.objects.filter(pk=failing.pk).update(task_state=TaskState.REBOOTING)
    assert MAINTENANCE not in member.get(f"/portal/appliances/{failing.pk}/").content.decode()


def test_the_categories_page_counts_ready_spares(demo, web, spare):
    InstanceFactory(name="spare-building", category=spare.category, project=spare.project, is_spare=True,
                    status=Status.BUILDING)  # fmt: skip
    page = web(demo.admin).get("/console/categories/").content.decode()
    assert "<th>Spares ready</th>" in page
    row = page.split('data-slug="lb"')[1].split("</tr>")[0]
    assert '<td class="spares">1 / 2</td>' in row
    assert '<td class="spares">—</td>' in page.split('data-slug="vsa"')[1].split("</tr>")[0]


def test_the_overview_counts_instances_per_verdict(demo, web, fleet, failing):
    fleet.launch(1, name="unprobed")
    page = web(demo.admin).get("/console/").content.decode()
    summary = page.split('id="health-summary"')[1].split("</div>\n    </div></div>")[0]
    counts = dict(re.findall(r'data-health="(\w+)"><span[^>]*>\w+</span> <strong>(\d+)</strong>', summary))
    assert counts == {"healthy": "0", "failing": "1", "unhealthy": "0", "unchecked": "1"}
