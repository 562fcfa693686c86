"""A real HTTP server on loopback standing in for an appliance's web GUI, and an
appliance instance whose recorded management endpoint it is."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from instances.models import Instance
from tests.factories import InstanceFactory


class Appliance(BaseHTTPRequestHandler):
    seen: list[dict] = []
    release = threading.Event()  # ends the answers of /hold

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
        route, _, query = self.path.partition("?")
        if route == "/redirect":  # Location: the raw query after "to=", not decoded
            return self._send(302, b"", [("Location", query.partition("to=")[2])])
        if route == "/drip":  # a body one byte at a time, for longer than any deadline here
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            for _ in range(300):
                self.wfile.write(b".")
                self.wfile.flush()
                time.sleep(0.1)
            return None
        if route == "/slow-headers":  # the headers themselves, one slow line after another
            self.wfile.write(b"HTTP/1.1 200 OK\r\n")
            for n in range(300):
                self.wfile.write(f"X-Slow-{n}: 1\r\n".encode())
                self.wfile.flush()
                time.sleep(0.1)
            return None
        if route == "/hold":  # answers its headers, then holds the body until released
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.flush()
            Appliance.release.wait(30)
            self.wfile.write(b"ok")
            return None
        routes = {
            "/": (200, b"<h1>adminvms appliance GUI</h1>", [("Content-Type", "text/html"), ("Set-Cookie", "sid=1")]),
            "/headers": (200, json.dumps(dict(self.headers)).encode(), [("Content-Type", "application/json")]),
            "/login": (302, b"", [("Location", "/dashboard?x=1")]),
            "/absolute": (302, b"", [("Location", f"http://127.0.0.1:{port}/home")]),
            "/elsewhere": (302, b"", [("Location", "http://169.254.169.254/latest/meta-data")]),
            "/big": (200, b"x" * 1_000_000, [("Content-Type", "application/octet-stream")]),
            "/front-proxy-orders": (
                200,
                b"orders",
                [
                    ("Content-Type", "text/plain"),
                    ("X-Accel-Redirect", "/internal/etc/passwd"),
                    ("X-Accel-Buffering", "no"),
                    ("X-Accel-Limit-Rate", "1"),
                    ("X-Sendfile", "/etc/passwd"),
                    ("X-LIGHTTPD-send-file", "/etc/shadow"),
                    ("X-Appliance", "kept"),
                ],
            ),
            "/hostile-headers": (
                200,
                b"<p>hostile</p>",
                [
                    ("Content-Type", "text/html"),
                    ("Service-Worker-Allowed", "/"),
                    ("Refresh", "0;url=http://169.254.169.254/"),
                    ("Clear-Site-Data", '"cookies", "storage"'),
                    ("Set-Cookie", "sessionid=planted; Domain=gui.localhost; Path=/"),
                    ("Set-Cookie", "csrftoken=planted; Path=/"),
                    ("X-Frame-Options", "ALLOWALL"),
                    ("Content-Security-Policy", "frame-ancestors *; script-src 'self'"),
                    ("Strict-Transport-Security", "max-age=31536000; includeSubDomains"),
                    ("Alt-Svc", 'h2="169.254.169.254:443"'),
                    ("Cache-Control", "public, max-age=600, s-maxage=600"),
                    ("Link", "</a.css>; rel=preload"),
                    ("Link", "</b.js>; rel=preload"),
                    ("Connection", "close, X-Appliance-Hop"),
                    ("X-Appliance-Hop", "for the next hop only"),
                ],
            ),
        }
        status, body, headers = routes.get(route, (404, b"not here", []))
        return self._send(status, body, headers)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        body = self.rfile.read(length).decode()
        Appliance.seen.append({"path": self.path, "body": body, "headers": dict(self.headers)})
        self._send(200, b"saved")


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):  # a client that hung up (the deadline) is expected
        pass


@pytest.fixture
def appliance_server():
    server = QuietServer(("127.0.0.1", 0), Appliance)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    Appliance.seen = []
    Appliance.release.clear()
    yield server
    Appliance.release.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def gui(demo, appliance_server) -> Instance:
    """An ACTIVE vsa of acme whose recorded management endpoint is the server above."""
    port = appliance_server.server_address[1]
    return InstanceFactory(
        name="vsa-gui", category=demo.categories["vsa"], project=demo.acme, backend="docker",
        management_endpoint=f"127.0.0.1:{port}", addresses={"management": ["127.0.0.1"]},
    )  # fmt: skip
