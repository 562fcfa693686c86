"""The appliance GUI proxy on the appliance's own origin, against a real HTTP server on
loopback standing in for the appliance (``conftest.Appliance``)."""

from __future__ import annotations

import json
import time

import pytest

from instances import proxy

from .conftest import Appliance


def _body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def test_member_gets_the_appliance_page_at_the_root_of_its_origin(demo, gui, gui_client):
    response = gui_client(demo.alice, gui).get("/")
    assert response.status_code == 200
    assert response.streaming
    assert b"adminvms appliance GUI" in _body(response)
    assert not response.cookies  # the appliance's Set-Cookie never reaches the browser
    assert Appliance.seen[-1]["path"] == "/"


def test_cookies_authorization_and_forwarding_headers_are_not_forwarded(demo, gui, appliance_server, gui_client):
    client = gui_client(
        demo.alice, gui, HTTP_AUTHORIZATION="Token secret", HTTP_X_CUSTOM="kept", HTTP_X_FORWARDED_FOR="10.9.9.9"
    )
    body = json.loads(_body(client.get("/headers")))
    assert "Cookie" not in body and "Authorization" not in body
    assert "X-Forwarded-For" not in body
    assert body["Host"] == f"127.0.0.1:{appliance_server.server_address[1]}"
    assert body["X-Forwarded-Host"] == client.gui_host
    assert body["X-Forwarded-Proto"] == "http"
    assert body["X-Custom"] == "kept"


def test_origin_of_the_gui_itself_is_translated_for_the_appliance(demo, gui, appliance_server, gui_client):
    client = gui_client(demo.alice, gui)
    form = "application/x-www-form-urlencoded"
    own = f"http://{client.gui_host}"
    response = client.post("/settings", "a=1", content_type=form, HTTP_ORIGIN=own, HTTP_REFERER=own + "/page")
    assert response.status_code == 200
    seen = Appliance.seen[-1]
    upstream = f"http://127.0.0.1:{appliance_server.server_address[1]}"
    assert (seen["path"], seen["body"]) == ("/settings", "a=1")
    assert seen["headers"]["Origin"] == upstream and seen["headers"]["Referer"] == upstream + "/page"


def test_dangerous_response_headers_are_dropped_and_ours_set(demo, gui, gui_client):
    response = gui_client(demo.alice, gui).get("/hostile-headers")
    assert response.status_code == 200
    for name in (
        "Service-Worker-Allowed", "Refresh", "Clear-Site-Data", "Set-Cookie", "Strict-Transport-Security", "Alt-Svc",
        "X-Appliance-Hop",  # named by its Connection header: hop-by-hop
    ):  # fmt: skip
        assert name not in response.headers, name
    assert not response.cookies
    assert response["X-Frame-Options"] == "DENY"
    # The appliance's own policy stays (it guards the appliance's pages); ours is added: both apply.
    assert response["Content-Security-Policy"] == "frame-ancestors *; script-src 'self', frame-ancestors 'none'"
    assert response["Cross-Origin-Resource-Policy"] == "same-origin"
    assert response["Cache-Control"] == "private, max-age=600"
    assert response["Link"] == "</a.css>; rel=preload, </b.js>; rel=preload"


def test_redirects_inside_the_appliance_become_paths_on_its_origin(demo, gui, gui_client):
    client = gui_client(demo.alice, gui)
    response = client.get("/login")
    assert response.status_code == 302
    assert response["Location"] == "/dashboard?x=1"
    assert client.get("/absolute")["Location"] == "/home"
    # An appliance that knows its public address (X-Forwarded-Host) may name it.
    assert client.get(f"/redirect?to=http://{client.gui_host}/in")["Location"] == "/in"


def test_redirect_leaving_the_appliance_is_refused(demo, gui, gui_client):
    response = gui_client(demo.alice, gui).get("/elsewhere")
    assert response.status_code == 502
    assert "169.254" not in response.content.decode()
    assert "redirected outside" in response.content.decode()


@pytest.mark.parametrize(
    "location",
    [
        "/%2e%2e/%2e%2e/etc/passwd",  # dot segments, percent-encoded
        "/a/%2E%2e/b",
        "/%252e%252e/x",  # encoded twice
        "/%2f%2fevil.example/x",  # a second slash once decoded: another host to a browser
        "//evil.example/x",
        "/%5cevil.example",  # a backslash, encoded
        "/\\evil.example",
        "/x%0d%0aSet-Cookie:%20a=b",  # a header injected once decoded
        "/__adminvms__/ticket?t=x",  # the dashboard's reserved paths on this origin
        "/%5F_adminvms__/ticket",
        "http://127.0.0.1:1/",  # the appliance's host, another port
        "https://evil.example/",
        "javascript:alert(1)",
    ],
)
def test_redirects_that_leave_after_percent_decoding_are_refused(demo, gui, gui_client, location):
    response = gui_client(demo.alice, gui).get(f"/redirect?to={location}")
    assert response.status_code == 502, response.get("Location")
    assert "redirected outside" in response.content.decode()
    assert "Location" not in response


@pytest.mark.parametrize(
    ("location", "expected"),
    [("/a/b?c=%2F", "/a/b?c=%2F"), ("next", "/dir/next"), ("../up", "/up"), ("/a%2fb", "/a%2fb"), ("", "/dir/page")],
)
def test_plain_redirects_are_kept(location, expected):
    endpoint = proxy.Endpoint("127.0.0.1", 8080)
    kept = proxy.rewrite_location(location, endpoint=endpoint, requested="/dir/page", public_host="x.gui.localhost")
    assert kept == expected


@pytest.mark.parametrize("path", ["../../admin/", "a/../../etc/passwd", "%2e%2e/%2e%2e/etc/passwd", "./x"])
def test_dot_segments_are_refused(demo, gui, path, gui_client):
    assert gui_client(demo.alice, gui).get(f"/{path}").status_code == 400
    assert Appliance.seen == []


def test_an_absolute_url_in_the_path_still_lands_on_the_appliance(demo, gui, gui_client):
    response = gui_client(demo.alice, gui).get("/http://169.254.169.254/latest/meta-data")
    assert response.status_code == 404  # the appliance's own 404
    assert Appliance.seen[-1]["path"].startswith("/http:")  # a path on the appliance, not a new host


def test_host_header_tricks_are_rejected_before_the_proxy(demo, gui, gui_client):
    client = gui_client(demo.alice, gui)
    assert client.get("/", HTTP_HOST="169.254.169.254").status_code == 400
    assert Appliance.seen == []


def test_endpoint_outside_the_allowed_networks_is_refused(demo, gui, gui_client):
    client = gui_client(demo.alice, gui)
    gui.management_endpoint = "10.20.30.40:80"
    gui.save()
    response = client.get("/")
    assert response.status_code == 502
    assert "outside the networks" in response.content.decode()
    assert "10.20.30.40" not in response.content.decode()


def test_large_responses_stream(demo, gui, gui_client):
    response = gui_client(demo.alice, gui).get("/big")
    chunks = list(response.streaming_content)
    assert len(chunks) > 1
    assert sum(map(len, chunks)) == 1_000_000


def test_a_slow_drip_body_ends_at_the_deadline(demo, gui, gui_client, settings):
    settings.ADMINVMS = {**settings.ADMINVMS, "GUI_DEADLINE": 1.0}
    client = gui_client(demo.alice, gui)
    started = time.monotonic()
    response = client.get("/drip")
    assert response.status_code == 200  # the headers came in time
    received = b""
    with pytest.raises(proxy.ProxyRefused, match="within 1 seconds"):
        for chunk in response.streaming_content:
            received += chunk
    # The stream breaks off (the browser sees it incomplete) about when the deadline passes,
    # not after the 30 s the appliance would take.
    assert time.monotonic() - started < 3
    assert 0 < len(received) < 30


def test_slow_headers_end_at_the_deadline_with_504(demo, gui, gui_client, settings):
    settings.ADMINVMS = {**settings.ADMINVMS, "GUI_DEADLINE": 1.0}
    client = gui_client(demo.alice, gui)
    started = time.monotonic()
    response = client.get("/slow-headers")
    assert response.status_code == 504
    assert time.monotonic() - started < 3
    assert "did not answer within 1 seconds" in response.content.decode()


def test_an_appliance_that_does_not_answer_is_502(demo, gui, gui_client, appliance_server):
    client = gui_client(demo.alice, gui)
    appliance_server.shutdown()
    appliance_server.server_close()
    response = client.get("/")
    assert response.status_code == 502
    assert "does not answer" in response.content.decode()
