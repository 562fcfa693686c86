"""The appliance GUI proxy against a real HTTP server on loopback standing in for an appliance."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from instances.models import Instance
from tests.factories import InstanceFactory


class Appliance(BaseHTTPRequestHandler):
    seen: list[dict] = []

    def log_message(self, *args):  # keep the test output clean
        pass

    def _send(self, status, body=b"", headers=()):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        Appliance.seen.append({"path": self.path, "headers": dict(self.headers)})
        port = self.server.server_address[1]
        routes = {
            "/": (200, b"<h1>adminvms appliance GUI</h1>", [("Content-Type", "text/html"), ("Set-Cookie", "sid=1")]),
            "/headers": (200, json.dumps(dict(self.headers)).encode(), [("Content-Type", "application/json")]),
            "/login": (302, b"", [("Location", "/dashboard?x=1")]),
            "/absolute": (302, b"", [("Location", f"http://127.0.0.1:{port}/home")]),
            "/elsewhere": (302, b"", [("Location", "http://169.254.169.254/latest/meta-data")]),
            "/big": (200, b"x" * 1_000_000, [("Content-Type", "application/octet-stream")]),
        }
        status, body, headers = routes.get(self.path.split("?")[0], (404, b"not here", []))
        self._send(status, body, headers)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        Appliance.seen.append({"path": self.path, "body": self.rfile.read(length).decode()})
        self._send(200, b"saved")


@pytest.fixture
def appliance_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Appliance)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    Appliance.seen = []
    yield server
    server.shutdown()


@pytest.fixture
def gui(demo, appliance_server) -> Instance:
    """An ACTIVE vsa of acme whose recorded management endpoint is the server above."""
    port = appliance_server.server_address[1]
    return InstanceFactory(
        name="vsa-gui", category=demo.categories["vsa"], project=demo.acme, backend="docker",
        management_endpoint=f"127.0.0.1:{port}", addresses={"management": ["127.0.0.1"]},
    )  # fmt: skip


def _url(instance, path=""):
    return f"/portal/appliances/{instance.pk}/gui/{path}"


def test_member_gets_the_appliance_page_through_the_proxy(demo, gui, web):
    response = web(demo.alice).get(_url(gui))
    assert response.status_code == 200
    assert response.streaming
    assert b"adminvms appliance GUI" in b"".join(response.streaming_content)
    assert "Set-Cookie" not in response.headers or "sid=" not in response.headers.get("Set-Cookie", "")


def test_cookies_authorization_and_host_are_not_forwarded(demo, gui, appliance_server, web):
    client = web(demo.alice, HTTP_AUTHORIZATION="Token secret", HTTP_X_CUSTOM="kept")
    body = json.loads(b"".join(client.get(_url(gui, "headers")).streaming_content))
    assert "Cookie" not in body and "Authorization" not in body
    assert body["Host"] == f"127.0.0.1:{appliance_server.server_address[1]}"
    assert body["X-Custom"] == "kept"
    assert body["X-Forwarded-Prefix"] == _url(gui)


def test_redirects_inside_the_appliance_are_rewritten_under_the_proxy(demo, gui, web):
    client = web(demo.alice)
    response = client.get(_url(gui, "login"))
    assert response.status_code == 302
    assert response["Location"] == _url(gui, "dashboard?x=1")
    assert client.get(_url(gui, "absolute"))["Location"] == _url(gui, "home")


def test_redirect_leaving_the_appliance_is_refused(demo, gui, web):
    response = web(demo.alice).get(_url(gui, "elsewhere"))
    assert response.status_code == 502
    assert "169.254" not in response.content.decode()
    assert "redirected outside" in response.content.decode()


@pytest.mark.parametrize("path", ["../../admin/", "a/../../etc/passwd", "%2e%2e/%2e%2e/etc/passwd", "./x"])
def test_dot_segments_are_refused(demo, gui, path, web):
    assert web(demo.alice).get(_url(gui, path)).status_code == 400
    assert Appliance.seen == []


def test_an_absolute_url_in_the_path_still_lands_on_the_appliance(demo, gui, web):
    response = web(demo.alice).get(_url(gui, "http://169.254.169.254/latest/meta-data"))
    assert response.status_code == 404  # the appliance's own 404
    assert Appliance.seen[-1]["path"].startswith("/http:")  # a path on the appliance, not a new host


def test_host_header_tricks_are_rejected_before_the_proxy(demo, gui, web):
    response = web(demo.alice, HTTP_HOST="169.254.169.254").get(_url(gui))
    assert response.status_code == 400
    assert Appliance.seen == []


def test_endpoint_outside_the_allowed_networks_is_refused(demo, gui, web):
    gui.management_endpoint = "10.20.30.40:80"
    gui.save()
    response = web(demo.alice).get(_url(gui))
    assert response.status_code == 502
    assert "outside the networks" in response.content.decode()
    assert "10.20.30.40" not in response.content.decode()


def test_another_projects_member_gets_404_and_a_reader_403(demo, gui, web):
    assert web(demo.bob).get(_url(gui)).status_code == 404
    assert web(demo.rita).get(_url(gui)).status_code == 403
    assert web().get(_url(gui)).status_code == 302  # anonymous: to the login page
    assert Appliance.seen == []


def test_gui_of_an_appliance_that_is_not_active_is_refused(demo, gui, web):
    gui.status = "STOPPED"
    gui.save()
    assert web(demo.alice).get(_url(gui)).status_code == 409


def test_posts_need_the_dashboards_origin(demo, gui, web):
    client = web(demo.alice)
    form = "application/x-www-form-urlencoded"
    assert client.post(_url(gui, "settings"), "a=1", content_type=form).status_code == 403
    response = client.post(_url(gui, "settings"), "a=1", content_type=form, HTTP_ORIGIN="http://testserver")
    assert response.status_code == 200
    assert Appliance.seen[-1] == {"path": "/settings", "body": "a=1"}


def test_large_responses_stream(demo, gui, web):
    response = web(demo.alice).get(_url(gui, "big"))
    chunks = list(response.streaming_content)
    assert len(chunks) > 1
    assert sum(map(len, chunks)) == 1_000_000


def test_simulated_appliances_show_a_labelled_page(demo, api, run_tasks, web):
    with run_tasks():
        body = api(demo.alice).post("/api/v1/instances/", {"name": "sim-vsa", "category": "vsa"}, format="json").json()
    response = web(demo.alice).get(f"/portal/appliances/{body['id']}/gui/")
    assert response.status_code == 200
    assert "sim · simulated" in response.content.decode()
