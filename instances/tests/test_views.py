"""The HTML pages for every role: provider admin, member, reader, another
project's member, anonymous. Same policy, services and filters as the API."""

from __future__ import annotations

import pytest
from django.test import Client

from instances import services
from instances.drivers.sim.models import SimServer
from instances.models import Instance

CONSOLE_PAGES = [
    "/console/",
    "/console/instances/",
    "/console/instances/?category=vsa&status=ACTIVE&ordering=-name",
    "/console/categories/",
    "/console/categories/new/",
    "/console/categories/vsa/",
    "/console/flavors/",
    "/console/images/?category=vsa",
    "/console/volumes/",
]
PORTAL_PAGES = ["/portal/", "/portal/appliances/"]


@pytest.fixture
def appliance(demo, api, run_tasks):
    """An ACTIVE vsa appliance of acme, launched by alice through the service layer."""
    with run_tasks():
        response = api(demo.alice).post("/api/v1/instances/", {"name": "store-1", "category": "vsa"}, format="json")
    instance = Instance.objects.get(pk=response.json()["id"])
    assert instance.status == "ACTIVE" and instance.management_endpoint
    return instance


@pytest.fixture
def lb(demo, api, run_tasks):
    with run_tasks():
        response = api(demo.admin).post(
            "/api/v1/instances/", {"name": "lb-1", "category": "lb", "project": "acme"}, format="json"
        )
    return Instance.objects.get(pk=response.json()["id"])


@pytest.mark.parametrize("url", CONSOLE_PAGES + PORTAL_PAGES + ["/launch/"])
def test_anonymous_is_sent_to_login(db, web, url):
    response = web().get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


@pytest.mark.parametrize("url", CONSOLE_PAGES)
def test_console_pages_render_for_the_provider_admin(demo, web, appliance, url):
    response = web(demo.admin).get(url)
    assert response.status_code == 200
    assert b"Sign out" in response.content


@pytest.mark.parametrize("url", CONSOLE_PAGES)
@pytest.mark.parametrize("username", ["alice", "rita", "bob"])
def test_console_is_forbidden_to_project_users(demo, web, url, username):
    assert web(getattr(demo, username)).get(url).status_code == 403


@pytest.mark.parametrize("url", PORTAL_PAGES)
@pytest.mark.parametrize("username", ["alice", "rita", "bob", "gina", "admin"])
def test_portal_pages_render_for_everyone_signed_in(demo, web, appliance, url, username):
    assert web(getattr(demo, username)).get(url).status_code == 200


def test_home_sends_each_role_to_its_interface(demo, web):
    assert web(demo.admin).get("/")["Location"] == "/console/"
    assert web(demo.alice).get("/")["Location"] == "/portal/"


def test_console_overview_counts_and_labels_the_simulated_backend(demo, web, appliance):
    body = web(demo.admin).get("/console/").content.decode()
    assert "Virtual storage array" in body
    assert "sim · simulated" in body


def test_console_instances_filter_by_category_project_and_status(demo, web, appliance, lb):
    client = web(demo.admin)
    body = client.get("/console/instances/?category=lb").content.decode()
    assert "lb-1" in body and "store-1" not in body
    body = client.get("/console/instances/?category=all&project=globex").content.decode()
    assert "lb-1" not in body and "store-1" not in body
    body = client.get("/console/instances/?category=all&status=ACTIVE").content.decode()
    assert "lb-1" in body and "store-1" in body
    response = client.get("/console/instances/?category=all&status=EXPLODED")
    assert response.status_code == 200
    assert "Unknown status EXPLODED" in response.content.decode()


def test_member_appliance_page_never_shows_management_address_or_backend_id(demo, web, appliance):
    server = SimServer.objects.get(instance_uuid=appliance.pk)
    management_ip = appliance.addresses["management"][0]
    for url in ("/portal/appliances/", f"/portal/appliances/{appliance.pk}/", f"/instances/{appliance.pk}/row/"):
        body = web(demo.alice).get(url).content.decode()
        assert appliance.name in body
        assert management_ip not in body
        assert appliance.management_endpoint not in body
        assert str(server.pk) not in body
        assert server.host not in body
    page = web(demo.alice).get(f"/portal/appliances/{appliance.pk}/").content.decode()
    assert "Open appliance GUI" in page
    # The provider admin sees all of it.
    admin_page = web(demo.admin).get(f"/console/instances/{appliance.pk}/").content.decode()
    assert management_ip in admin_page and str(server.pk) in admin_page


def test_another_projects_member_gets_404_everywhere(demo, web, appliance):
    client = web(demo.bob)
    for url in (
        f"/portal/appliances/{appliance.pk}/",
        f"/portal/instances/{appliance.pk}/",
        f"/instances/{appliance.pk}/row/",
        f"/instances/{appliance.pk}/timeline/",
    ):
        assert client.get(url).status_code == 404, url
    assert client.post(f"/instances/{appliance.pk}/reboot/").status_code == 404
    assert "store-1" not in client.get("/portal/appliances/").content.decode()


def test_member_cannot_see_hidden_or_provider_instances_in_the_portal(demo, web, lb):
    body = web(demo.alice).get("/portal/").content.decode()
    assert "lb-1" not in body  # not a standard instance
    appliances = web(demo.alice).get("/portal/appliances/").content.decode()
    assert "lb-1" in appliances  # lb is visible read-only
    assert 'data-op="reboot"' not in appliances  # but members may not act on it
    assert "Cache" not in appliances  # the hidden category is not offered


def test_reader_sees_no_action_buttons_and_may_not_launch(demo, web, appliance):
    client = web(demo.rita)
    body = client.get("/portal/appliances/").content.decode()
    assert "store-1" in body
    assert "data-op=" not in body
    assert "Request" not in body
    assert client.get("/launch/").status_code == 403
    assert client.post(f"/instances/{appliance.pk}/reboot/").status_code == 302  # refused with a message
    appliance.refresh_from_db()
    assert appliance.task_state == ""


def test_member_sees_only_the_operations_the_category_allows(demo, web, appliance):
    body = web(demo.alice).get("/portal/appliances/").content.decode()
    assert 'data-op="reboot"' in body and 'data-op="terminate"' in body
    assert 'data-op="stop"' not in body  # vsa does not let members stop


def test_row_action_through_htmx_answers_the_refreshed_row(demo, web, appliance):
    client = web(demo.alice)
    response = client.post(f"/instances/{appliance.pk}/reboot/", {"columns": "portal"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    body = response.content.decode()
    assert 'data-status="REBOOTING"' in body
    assert 'hx-trigger="every 2s"' in body  # it keeps polling until it settles
    second = client.post(f"/instances/{appliance.pk}/reboot/", HTTP_HX_REQUEST="true").content.decode()
    assert "busy" in second  # 409 of the API, as a message in the row


def test_settled_row_stops_polling(demo, web, appliance):
    body = web(demo.alice).get(f"/instances/{appliance.pk}/row/").content.decode()
    assert 'data-status="ACTIVE"' in body
    assert "hx-trigger" not in body


def test_launch_form_errors_name_the_field_and_write_nothing(demo, web):
    before = Instance.objects.count()
    response = web(demo.alice).post(
        "/launch/?categories=vsa", {"name": "x", "project": "acme", "category": "vsa", "flavor": "m1.tiny", "count": 1}
    )
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode() or "not allowed" in response.content.decode()
    assert 'data-field="flavor"' in response.content.decode()
    assert Instance.objects.count() == before


def test_launch_form_over_quota_says_why(demo, web):
    response = web(demo.alice).post("/launch/", {"name": "many", "project": "acme", "category": "vsa", "count": 4})
    assert "Quota exceeded" in response.content.decode()
    assert not Instance.objects.filter(name__startswith="many").exists()


def test_launch_form_shows_the_category_defaults(demo, web):
    body = web(demo.alice).get("/launch/?category=vsa", HTTP_HX_REQUEST="true").content.decode()
    assert "default flavor m1.small" in body
    assert "m1.tiny" not in body  # not allowed for vsa


def test_member_launches_through_the_form_and_lands_on_the_appliance_page(demo, web, run_tasks):
    with run_tasks():
        response = web(demo.alice).post(
            "/launch/", {"name": "gui-store", "project": "acme", "category": "vsa", "count": 1}
        )
    instance = Instance.objects.get(name="gui-store")
    assert response["Location"] == f"/portal/appliances/{instance.pk}/"
    instance.refresh_from_db()
    assert instance.status == "ACTIVE"


def test_category_form_validates_like_the_api(demo, web):
    client = web(demo.admin)
    response = client.post(
        "/console/categories/new/",
        {"slug": "vpn", "name": "VPN", "kind": "vm", "management": "provider", "network_placement": "both",
         "user_operations": ["launch"], "min_vcpus": 0, "min_ram_mb": 0, "min_disk_gb": 0, "gui_path": "/",
         "spare_pool_size": 0, "extra_metadata": "{}"},
    )  # fmt: skip
    body = response.content.decode()
    assert response.status_code == 200
    assert 'data-field="user_operations"' in body  # provider-managed: members cannot launch
    response = client.post(
        "/console/categories/new/",
        {"slug": "vpn", "name": "VPN", "kind": "vm", "management": "provider", "network_placement": "both",
         "min_vcpus": 0, "min_ram_mb": 0, "min_disk_gb": 0, "gui_path": "/", "spare_pool_size": 0,
         "health_check_threshold": 3, "health_check_grace": 60, "extra_metadata": '{"service": "vpn"}',
         "user_visible": "on"},
    )  # fmt: skip
    assert response.status_code == 302
    assert "vpn" in client.get("/console/categories/").content.decode()


def test_deactivate_and_refused_delete_show_messages(demo, web, appliance):
    client = web(demo.admin)
    page = client.post("/console/categories/vsa/delete/", follow=True).content.decode()
    assert "live instance" in page
    page = client.post("/console/categories/vsa/deactivate/", follow=True).content.decode()
    assert "is inactive" in page


def test_project_switcher_limits_the_portal(demo, web, appliance):
    from tenancy.models import Membership

    Membership.objects.create(user=demo.alice, project=demo.globex, role="reader")
    client = web(demo.alice)
    assert "store-1" in client.get("/portal/appliances/").content.decode()
    client.post("/project/", {"project": "globex"})
    assert "store-1" not in client.get("/portal/appliances/").content.decode()
    assert client.post("/project/", {"project": "initech"}).status_code == 404


def test_forms_are_csrf_protected(demo, appliance):
    client = Client(enforce_csrf_checks=True)
    client.force_login(demo.alice)
    assert client.post(f"/instances/{appliance.pk}/reboot/").status_code == 403
    assert client.post("/launch/", {"name": "x"}).status_code == 403


def test_row_columns_follow_who_asks_not_the_request(demo, web, appliance):
    """A member asking for the console's columns still gets the portal's: no host, no project."""
    member = web(demo.alice).get(f"/instances/{appliance.pk}/row/?columns=console").content.decode()
    admin = web(demo.admin).get(f"/instances/{appliance.pk}/row/?columns=portal").content.decode()
    assert appliance.host and appliance.host not in member
    assert member.count("<td") < admin.count("<td")
    assert appliance.host in admin and "acme" in admin
    posted = web(demo.alice).post(f"/instances/{appliance.pk}/reboot/", {"columns": "console"}, HTTP_HX_REQUEST="true")
    assert appliance.host not in posted.content.decode()


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "javascript:alert(1)"])
def test_next_must_stay_on_this_site(demo, web, appliance, target):
    client = web(demo.alice)
    response = client.post(f"/instances/{appliance.pk}/reboot/", {"next": target})
    assert response.status_code == 302
    assert response["Location"] == f"/portal/appliances/{appliance.pk}/"
    response = client.post("/project/", {"project": "acme", "next": target})
    assert response["Location"] == "/"
    response = client.post("/project/", {"project": "acme", "next": "/portal/appliances/"})
    assert response["Location"] == "/portal/appliances/"


def test_members_read_a_plain_fault_admins_the_backends_text(demo, web, api, appliance):
    """A backend's error text carries server ids and hosts: members of the project read a plain sentence."""
    raw = f"Disk of server {appliance.backend_id} on sim-host-1 failed (http://10.9.8.7:2375/v1.45/containers)"
    SimServer.objects.filter(instance_uuid=appliance.pk).update(status="ERROR", fault=raw)
    services.instances_reconcile(backends=["sim"])
    appliance.refresh_from_db()
    assert (appliance.status, appliance.fault) == ("ERROR", raw)
    member_views = [
        web(demo.alice).get(f"/portal/appliances/{appliance.pk}/").content.decode(),
        web(demo.alice).get("/portal/appliances/").content.decode(),
        web(demo.alice).get(f"/instances/{appliance.pk}/row/").content.decode(),
        web(demo.alice).get(f"/instances/{appliance.pk}/timeline/").content.decode(),
        api(demo.alice).get(f"/api/v1/instances/{appliance.pk}/").content.decode(),
        api(demo.alice).get(f"/api/v1/instances/{appliance.pk}/events/").content.decode(),
    ]
    for body in member_views:
        assert "sim-host-1" not in body and "10.9.8.7" not in body and appliance.backend_id not in body
    assert "the provider has been told" in member_views[0]
    assert raw in web(demo.admin).get(f"/console/instances/{appliance.pk}/").content.decode()


def test_portal_appliances_pages_each_category_on_its_own(demo, web):
    """The appliances page shows a page of each category's instances, not every one: 30 vsa appliances
    read as 25 and a link to the next 5, which keeps the other sections where they were."""
    from tests.factories import InstanceFactory

    vsa, lb = demo.categories["vsa"], demo.categories["lb"]
    for n in range(30):
        InstanceFactory(name=f"store-{n:02d}", category=vsa, project=demo.acme)
    InstanceFactory(name="balancer", category=lb, project=demo.acme)
    alice = web(demo.alice)
    first = alice.get("/portal/appliances/").content.decode()
    assert sum(f"store-{n:02d}" in first for n in range(30)) == 25
    assert "balancer" in first and "Page 1 of 2 · 30 instances" in first
    assert 'href="?&vsa-page=2"' in first
    second = alice.get("/portal/appliances/?vsa-page=2").content.decode()
    assert sum(f"store-{n:02d}" in second for n in range(30)) == 5 and "balancer" in second
    assert {f"store-{n:02d}" for n in range(30) if f"store-{n:02d}" in first + second} == {
        f"store-{n:02d}" for n in range(30)
    }


def test_a_large_fleets_overview_reads_the_workers_count_until_it_is_stale(demo, web, appliance, settings):
    """Above COUNTS_EXACT_BELOW the overview shows the count the worker took (and when), not a count of
    every row; a count older than three intervals (no worker) gives way to counting now."""
    from datetime import timedelta

    from django.utils import timezone

    from instances.models import FleetCounts
    from tests.factories import InstanceFactory

    settings.ADMINVMS = {**settings.ADMINVMS, "COUNTS_EXACT_BELOW": 1, "COUNTS_INTERVAL": 30}
    admin = web(demo.admin)
    snapshot = services.counts_take()
    assert snapshot.counts["total"] == 1 and snapshot.counts["health"] == {"unchecked": 1}
    InstanceFactory(name="after", category=demo.categories["standard"], project=demo.acme)
    page = admin.get("/console/").content.decode()
    assert '<div class="display-6" id="total">1</div>' in page and 'id="counted-at"' in page
    FleetCounts.objects.update(taken_at=timezone.now() - timedelta(seconds=91))
    page = admin.get("/console/").content.decode()
    assert '<div class="display-6" id="total">2</div>' in page and 'id="counted-at"' not in page
    services.counts_take()
    assert FleetCounts.objects.get().counts["total"] == 2  # one row, the newest


def test_a_small_fleet_is_counted_on_every_visit(demo, web, appliance):
    services.counts_take()
    page = web(demo.admin).get("/console/").content.decode()
    assert '<div class="display-6" id="total">1</div>' in page and 'id="counted-at"' not in page
