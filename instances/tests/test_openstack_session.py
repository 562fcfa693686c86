"""The openstack driver's keystoneauth session retries what a client behind a load balancer must, and no more.

A tiny HTTP/1.1 server on 127.0.0.1 stands in for an API: it drops a kept-alive
connection without answering (what gunicorn does to an idle connection just as
the client reuses it) or answers 503 once (a load balancer with no backend).
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import keystoneauth1.exceptions as ks_exc
import keystoneauth1.session as ks_session
import pytest

from instances.drivers.openstack import _RetryingSession


class _Api(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    mode = "ok"  # "ok", "drop-second" (per connection) or "503-once" (per server)

    def log_message(self, *args):
        pass

    def _handle(self):
        server = self.server
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.served = getattr(self, "served", 0) + 1
        with server.lock:
            server.received.append(self.command)
            failures = server.failures
            server.failures = max(0, failures - 1)
        if self.mode == "drop-second" and self.served == 2:
            self.close_connection = True  # closed without a byte of answer
            return
        status = 503 if self.mode == "503-once" and failures else 200
        body = b'{"ok": true}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = _handle


@pytest.fixture
def api():
    def start(mode: str):
        handler = type("Handler", (_Api,), {"mode": mode})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        server.lock = threading.Lock()
        server.received = []
        server.failures = 1
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server, f"http://127.0.0.1:{server.server_address[1]}/"

    servers: list[ThreadingHTTPServer] = []
    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_a_dropped_keep_alive_connection_fails_without_retries(api):
    """The control: keystoneauth on its own does not survive the race."""
    server, url = api("drop-second")
    session = ks_session.Session()
    assert session.get(url, authenticated=False).status_code == 200
    with pytest.raises(ks_exc.ConnectFailure):
        session.get(url, authenticated=False)
    assert server.received == ["GET", "GET"]  # the dropped request was not sent again


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_dropped_keep_alive_connection_is_retried_on_a_new_one(api, method):
    server, url = api("drop-second")
    session = _RetryingSession()
    assert session.get(url, authenticated=False).status_code == 200
    assert session.request(url, method, authenticated=False, json={}).status_code == 200
    assert server.received == ["GET", method, method]  # the dropped request, then its retry


def test_503_is_retried_for_an_idempotent_call(api):
    server, url = api("503-once")
    assert _RetryingSession().get(url, authenticated=False).status_code == 200
    assert server.received == ["GET", "GET"]


def test_503_is_not_retried_for_a_post(api):
    """A POST may have made something before a proxy answered: the task retries it, finding it by its tags."""
    server, url = api("503-once")
    response = _RetryingSession().post(url, authenticated=False, json={}, raise_exc=False)
    assert response.status_code == 503
    assert server.received == ["POST"]
