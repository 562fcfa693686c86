"""Appliance GUIs on origins of their own: routing by host, the ticket handover, the GUI
host's cookie, the policy on every request, and the per-user cap (DESIGN.md rule 9)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core import checks, signing
from django.db import connection
from django.test import Client
from django.utils import timezone

from instances import gui_origin
from instances.models import GuiRequestSlot, GuiTicket, Instance
from instances.services import gui as gui_services
from tenancy.models import Membership
from tests.factories import InstanceFactory

from .conftest import Appliance


def _open(web, user, instance, **extra):
    """ "Open appliance GUI" on the dashboard: the redirect to the GUI host's ticket endpoint."""
    return web(user).post(f"/portal/appliances/{instance.pk}/gui/", **extra)


def _redeem(response, **extra):
    """Follow the dashboard's redirect as a browser would: a fresh client on the GUI host."""
    target = urlsplit(response["Location"])
    client = Client(HTTP_HOST=target.netloc, HTTP_SEC_FETCH_SITE="same-origin")
    return client, client.get(f"{target.path}?{target.query}", HTTP_SEC_FETCH_SITE="cross-site", **extra)


def _read(response):
    """Read a streamed answer to its end, as a browser does; then its slot is given back."""
    if response.streaming:
        b"".join(response.streaming_content)
    return response


def _host(instance) -> str:
    return f"{instance.pk}.gui.localhost"


# --- the handover ---------------------------------------------------------------------


def test_open_gui_redirects_to_the_appliances_own_origin_with_a_ticket(demo, gui, web):
    response = _open(web, demo.alice, gui, HTTP_HOST="127.0.0.1:8000")
    assert response.status_code == 302
    target = urlsplit(response["Location"])
    # The default works with `make run`: *.localhost is loopback, with the dashboard's port.
    assert (target.scheme, target.netloc) == ("http", f"{gui.pk}.gui.localhost:8000")
    assert target.path == "/__adminvms__/ticket"
    token = parse_qs(target.query)["t"][0]
    payload = signing.loads(token, salt=gui_services.TICKET_SALT)
    assert payload["u"] == demo.alice.pk and payload["i"] == str(gui.pk)
    assert GuiTicket.objects.get(pk=payload["n"]).redeemed_at is None


def test_gui_domain_scheme_and_port_come_from_settings(demo, gui, web, settings):
    settings.ALLOWED_HOSTS = ["cloud.example.com"]
    settings.ADMINVMS = {**settings.ADMINVMS, "GUI_DOMAIN": "appliances.example.net", "GUI_SCHEME": "https"}
    response = _open(web, demo.alice, gui, HTTP_HOST="cloud.example.com")
    assert response["Location"].startswith(f"https://{gui.pk}.appliances.example.net/__adminvms__/ticket?t=")
    settings.ADMINVMS = {**settings.ADMINVMS, "GUI_DOMAIN": "gui.localhost:9443"}
    response = _open(web, demo.alice, gui, HTTP_HOST="cloud.example.com")
    assert response["Location"].startswith(f"https://{gui.pk}.gui.localhost:9443/")


def test_the_ticket_opens_a_session_of_the_gui_host_only(demo, gui, web):
    client, landing = _redeem(_open(web, demo.alice, gui))
    assert landing.status_code == 200
    cookie = landing.cookies["adminvms_gui"]
    # Host-only (no Domain), HttpOnly, SameSite=Strict, short-lived; nothing else is set there.
    assert (cookie["domain"], cookie["path"], cookie["samesite"]) == ("", "/", "Strict")
    assert cookie["httponly"] and cookie["max-age"] == 3600
    assert set(landing.cookies) == {"adminvms_gui"}
    # The page moves on to the GUI's start path by itself, without a Referer carrying the ticket.
    assert '<meta http-equiv="refresh" content="0;url=/">' in landing.content.decode()
    assert landing["Referrer-Policy"] == "no-referrer"
    assert landing["Content-Security-Policy"].startswith("default-src 'none'")
    assert "frame-ancestors 'none'" in landing["Content-Security-Policy"]
    assert client.get("/").status_code == 200
    assert Appliance.seen[-1]["path"] == "/"


def test_the_start_path_is_the_categorys_gui_path(demo, gui, web):
    gui.category.gui_path = "/ui/index.html"
    gui.category.save()
    _client, landing = _redeem(_open(web, demo.alice, gui))
    assert 'content="0;url=/ui/index.html"' in landing.content.decode()


def test_the_dashboards_cookies_are_host_only(demo, client):
    """The session and CSRF cookies carry no Domain: a browser keeps them to the dashboard's host."""
    client.get("/accounts/login/")
    assert client.cookies["csrftoken"]["domain"] == ""
    response = client.post("/accounts/login/", {"username": "alice", "password": "demo-password-for-tests"})
    assert response.status_code == 302
    assert response.cookies["sessionid"]["domain"] == ""


def test_a_cookie_domain_covering_the_gui_domain_fails_the_system_check(settings):
    assert not [e for e in gui_origin.check_gui_domain() if e.level >= checks.ERROR]
    settings.SESSION_COOKIE_DOMAIN = ".localhost"
    settings.CSRF_COOKIE_DOMAIN = "gui.localhost"
    assert [e.id for e in gui_origin.check_gui_domain()] == ["adminvms.E002", "adminvms.E002"]
    settings.SESSION_COOKIE_DOMAIN = settings.CSRF_COOKIE_DOMAIN = None
    settings.ADMINVMS = {**settings.ADMINVMS, "GUI_DOMAIN": "localhost"}
    assert [e.id for e in gui_origin.check_gui_domain()] == ["adminvms.E001"]


def test_a_ticket_is_single_use(demo, gui, web):
    response = _open(web, demo.alice, gui)
    target = urlsplit(response["Location"])
    head = Client(HTTP_HOST=target.netloc).head(f"{target.path}?{target.query}")
    assert head.status_code == 405  # a link checker's HEAD does not spend it
    _first, landing = _redeem(response)
    assert landing.status_code == 200
    _second, replay = _redeem(response)
    assert replay.status_code == 403
    assert "adminvms_gui" not in replay.cookies


@pytest.mark.django_db(transaction=True)
def test_a_ticket_redeemed_four_times_at_once_opens_one_session(demo, gui, web):
    target = urlsplit(_open(web, demo.alice, gui)["Location"])
    barrier = threading.Barrier(4)

    def redeem(_):
        barrier.wait()
        try:
            return Client(HTTP_HOST=target.netloc).get(f"{target.path}?{target.query}").status_code
        finally:
            connection.close()

    with ThreadPoolExecutor(4) as pool:
        assert sorted(pool.map(redeem, range(4))) == [200, 403, 403, 403]


def test_an_expired_ticket_is_refused(demo, gui, web, settings):
    response = _open(web, demo.alice, gui)
    # Past its signed age...
    settings.ADMINVMS = {**settings.ADMINVMS, "GUI_TICKET_SECONDS": -1}
    assert _redeem(response)[1].status_code == 403
    # ...or past its row's expiry: either one refuses.
    settings.ADMINVMS = {**settings.ADMINVMS, "GUI_TICKET_SECONDS": 30}
    GuiTicket.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert _redeem(response)[1].status_code == 403


def test_a_forged_ticket_is_refused(demo, gui, web):
    response = _open(web, demo.alice, gui)
    nonce = GuiTicket.objects.get().pk
    # Alice's nonce, claimed by bob: the signature does not match.
    forged = signing.dumps({"n": nonce, "u": demo.bob.pk, "i": str(gui.pk)}, salt="another salt")
    client = Client(HTTP_HOST=_host(gui))
    assert client.get(f"/__adminvms__/ticket?t={forged}").status_code == 403
    assert client.get("/__adminvms__/ticket").status_code == 403
    assert _redeem(response)[1].status_code == 200  # the real one still works


def test_a_ticket_for_another_instance_is_refused(demo, gui, web):
    other = InstanceFactory(
        name="vsa-other", category=demo.categories["vsa"], project=demo.acme, backend="docker",
        management_endpoint=gui.management_endpoint,
    )  # fmt: skip
    response = _open(web, demo.alice, gui)
    target = urlsplit(response["Location"])
    wrong = Client(HTTP_HOST=_host(other)).get(f"{target.path}?{target.query}")
    assert wrong.status_code == 403
    assert "adminvms_gui" not in wrong.cookies
    assert GuiTicket.objects.get().redeemed_at is None


def test_another_projects_member_a_reader_and_anonymous_get_no_ticket(demo, gui, web):
    assert _open(web, demo.bob, gui).status_code == 404
    assert _open(web, demo.rita, gui).status_code == 403
    assert _open(web, None, gui).status_code == 302  # to the login page
    assert _open(web, None, gui)["Location"].startswith("/accounts/login/")
    assert not GuiTicket.objects.exists()


def test_a_cookie_of_one_appliance_opens_no_other(demo, gui, web, gui_client):
    alice = gui_client(demo.alice, gui)
    theirs = InstanceFactory(
        name="vsa-globex", category=demo.categories["vsa"], project=demo.globex, backend="docker",
        management_endpoint=gui.management_endpoint,
    )  # fmt: skip
    stolen = Client(HTTP_HOST=_host(theirs), HTTP_SEC_FETCH_SITE="same-origin")
    stolen.cookies["adminvms_gui"] = alice.cookies["adminvms_gui"].value
    assert stolen.get("/").status_code == 403
    assert Appliance.seen == []


def test_rights_lost_after_the_ticket_refuse_its_redemption(demo, gui, web):
    response = _open(web, demo.alice, gui)
    Membership.objects.filter(user=demo.alice, project=demo.acme).update(role="reader")
    assert _redeem(response)[1].status_code == 403


def test_every_request_asks_the_policy_again(demo, gui, gui_client):
    client = gui_client(demo.alice, gui)
    assert client.get("/").status_code == 200
    gui.status = "STOPPED"
    gui.save()
    assert client.get("/").status_code == 409
    gui.status = "ACTIVE"
    gui.save()
    Membership.objects.filter(user=demo.alice, project=demo.acme).update(role="reader")
    assert client.get("/").status_code == 403
    Membership.objects.filter(user=demo.alice, project=demo.acme).delete()
    assert client.get("/").status_code == 404
    assert len(Appliance.seen) == 1


def test_signing_out_of_the_dashboard_ends_the_gui_session(demo, gui, gui_client):
    client = gui_client(demo.alice, gui)
    assert client.get("/").status_code == 200
    client.dashboard.post("/accounts/logout/")
    response = client.get("/")
    assert response.status_code == 403
    assert "signed out of the dashboard" in response.content.decode()


def test_a_new_password_or_a_deactivated_user_ends_the_gui_session(demo, gui, gui_client):
    client = gui_client(demo.alice, gui)
    demo.alice.set_password("another-password-123")
    demo.alice.save()
    assert client.get("/").status_code == 403
    other = gui_client(demo.admin, gui)
    demo.admin.is_active = False
    demo.admin.save()
    assert other.get("/").status_code in {403, 404}


def test_a_provider_admin_opens_any_appliance(demo, gui, gui_client):
    assert gui_client(demo.admin, gui).get("/").status_code == 200


def test_no_cookie_no_gui(demo, gui):
    response = Client(HTTP_HOST=_host(gui), HTTP_SEC_FETCH_SITE="same-origin").get("/")
    assert response.status_code == 403
    assert "Open the appliance GUI from the dashboard" in response.content.decode()
    assert Appliance.seen == []


@pytest.mark.parametrize("site", ["cross-site", "same-site"])
def test_requests_other_sites_start_are_refused(demo, gui, gui_client, site):
    """A sibling appliance (same-site in production) or any other site gets nothing, cookie or not."""
    client = gui_client(demo.alice, gui)
    assert client.get("/", HTTP_SEC_FETCH_SITE=site).status_code == 403
    assert client.post("/settings", "a=1", content_type="text/plain", HTTP_SEC_FETCH_SITE=site).status_code == 403
    assert client.get("/", HTTP_SEC_FETCH_SITE="none").status_code == 200  # the address bar, a reload
    assert [s["path"] for s in Appliance.seen] == ["/"]


def test_without_fetch_metadata_posts_need_this_origin(demo, gui, gui_client):
    client = gui_client(demo.alice, gui)
    client.defaults.pop("HTTP_SEC_FETCH_SITE")
    form = "application/x-www-form-urlencoded"
    assert client.post("/settings", "a=1", content_type=form).status_code == 403
    assert client.post("/settings", "a=1", content_type=form, HTTP_ORIGIN="http://evil.example").status_code == 403
    own = f"http://{client.gui_host}"
    assert client.post("/settings", "a=1", content_type=form, HTTP_ORIGIN=own).status_code == 200
    assert client.get("/").status_code == 200


def test_simulated_appliances_show_a_labelled_page_on_their_own_origin(demo, api, run_tasks, gui_client):
    with run_tasks():
        body = api(demo.alice).post("/api/v1/instances/", {"name": "sim-vsa", "category": "vsa"}, format="json").json()
    response = gui_client(demo.alice, Instance.objects.get(pk=body["id"])).get("/")
    assert response.status_code == 200
    assert "sim · simulated" in response.content.decode()
    assert response["Content-Security-Policy"].startswith("default-src 'none'")


# --- routing by host --------------------------------------------------------------------

DASHBOARD_URLS = ["/", "/api/v1/me/", "/portal/", "/console/", "/admin/", "/accounts/login/", "/healthz",
                  "/static/css/adminvms.css", "/api/docs/"]  # fmt: skip


@pytest.mark.parametrize("host", ["gui.localhost", "not-a-uuid.gui.localhost", "a.b.gui.localhost"])
def test_no_dashboard_url_answers_under_the_gui_domain(demo, host):
    client = Client(HTTP_HOST=host)
    client.force_login(demo.admin)
    for url in [*DASHBOARD_URLS, "/__adminvms__/ticket"]:
        response = client.get(url)
        assert response.status_code == 404, url
        assert "adminvms appliance GUI" not in response.content.decode()


def test_on_an_appliances_host_dashboard_urls_are_the_appliances_own(demo, gui, gui_client):
    """Its own origin has no dashboard page: every path is the appliance's (here, its 404)."""
    client = gui_client(demo.admin, gui)
    for url in DASHBOARD_URLS[1:]:
        response = client.get(url)
        assert response.status_code == 404, url
        assert b"".join(response.streaming_content) == b"not here"  # the appliance's answer
    assert [s["path"] for s in Appliance.seen] == DASHBOARD_URLS[1:]
    anonymous = Client(HTTP_HOST=_host(gui), HTTP_SEC_FETCH_SITE="same-origin")
    assert [anonymous.get(url).status_code for url in DASHBOARD_URLS] == [403] * len(DASHBOARD_URLS)


def test_reserved_paths_on_the_gui_host_are_404(demo, gui, gui_client):
    client = gui_client(demo.alice, gui)
    for url in ["/__adminvms__/", "/__adminvms__/anything", "/__adminvms__"]:
        assert client.get(url).status_code == 404, url
    assert Appliance.seen == []


def test_only_the_canonical_uuid_names_an_appliance(demo, gui):
    assert gui_origin.host_route(f"{gui.pk}.gui.localhost:8000") == (True, gui.pk)
    assert gui_origin.host_route(f"{str(gui.pk).upper()}.GUI.localhost") == (True, gui.pk)
    assert gui_origin.host_route(f"{gui.pk.hex}.gui.localhost") == (True, None)
    assert gui_origin.host_route("127.0.0.1:8000") == (False, None)
    assert gui_origin.host_route("evilgui.localhost") == (False, None)


def test_the_proxy_is_gone_from_the_dashboards_origin(demo, gui, web):
    alice = web(demo.alice)
    for path in ["", "index.html", "headers"]:
        response = alice.get(f"/portal/appliances/{gui.pk}/gui/{path}")
        assert response.status_code in {302, 404}, path
        assert not response.streaming
    # A GET of the old link lands on the appliance page, where the button is.
    assert alice.get(f"/portal/appliances/{gui.pk}/gui/")["Location"] == f"/portal/appliances/{gui.pk}/"
    assert Appliance.seen == []
    assert not GuiTicket.objects.exists()


def test_the_appliance_page_opens_the_gui_with_a_post_and_its_csrf_token(demo, gui, web):
    page = web(demo.alice).get(f"/portal/appliances/{gui.pk}/").content.decode()
    assert f'action="/portal/appliances/{gui.pk}/gui/"' in page and 'method="post"' in page
    assert "csrfmiddlewaretoken" in page
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(demo.alice)
    assert strict.post(f"/portal/appliances/{gui.pk}/gui/").status_code == 403  # no token: no ticket


# --- the per-user cap -------------------------------------------------------------------


def test_requests_beyond_the_per_user_cap_get_429(demo, gui, gui_client, settings):
    settings.ADMINVMS = {**settings.ADMINVMS, "GUI_MAX_CONCURRENT": 2}
    client = gui_client(demo.alice, gui)
    held = [client.get("/hold"), client.get("/hold")]  # streaming, their bodies not read yet
    assert [r.status_code for r in held] == [200, 200]
    refused = client.get("/")
    assert refused.status_code == 429
    assert refused["Retry-After"] == "1"
    # Another user has slots of their own.
    assert _read(gui_client(demo.admin, gui).get("/")).status_code == 200
    Appliance.release.set()
    assert b"".join(held[0].streaming_content) == b"ok"  # done: its slot is free again
    assert _read(client.get("/")).status_code == 200
    assert b"".join(held[1].streaming_content) == b"ok"
    assert not GuiRequestSlot.objects.filter(user=demo.alice).exists()


def test_the_cap_counts_requests_of_every_web_process(demo, gui, gui_client, settings):
    """Slots live in the database: those another process holds count; expired ones (a process that died) do not."""
    settings.ADMINVMS = {**settings.ADMINVMS, "GUI_MAX_CONCURRENT": 2}
    client = gui_client(demo.alice, gui)
    later, earlier = timezone.now() + timedelta(seconds=60), timezone.now() - timedelta(seconds=1)
    GuiRequestSlot.objects.bulk_create([GuiRequestSlot(user=demo.alice, expires_at=later) for _ in range(2)])
    assert client.get("/").status_code == 429
    GuiRequestSlot.objects.update(expires_at=earlier)
    assert _read(client.get("/")).status_code == 200
    assert not GuiRequestSlot.objects.exists()  # the expired ones were swept, ours released


def test_a_refused_request_gives_its_slot_back(demo, gui, gui_client):
    client = gui_client(demo.alice, gui)
    assert client.get("/elsewhere").status_code == 502
    assert client.get("/../x").status_code == 400
    assert not GuiRequestSlot.objects.exists()
