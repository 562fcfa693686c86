"""The appliance GUI reverse proxy: an appliance's own origin (``gui_origin``) forwards
the browser to its web GUI without the user ever learning its address.

Safety rules, each tested:
- the upstream is the instance's recorded management endpoint and nothing else:
  never a host, port or URL from the request (the path only ever lands on that
  endpoint, and ``..`` segments are refused);
- the endpoint must lie in ``ADMINVMS_GUI_ALLOWED_NETWORKS``;
- on the way in, hop-by-hop headers, cookies, ``Authorization`` and forwarding
  headers are stripped; ``Origin`` and ``Referer`` of the GUI origin itself are
  translated to the appliance's, others dropped;
- on the way out, hop-by-hop headers and every header that would act beyond the
  page are dropped: cookies (the GUI origin's one cookie is ours), a service
  worker's wider scope, ``Refresh`` (a redirect the ``Location`` rules never see),
  ``Clear-Site-Data``, framing (ours forbids it), HSTS and ``Alt-Svc`` (the
  operator's, not an appliance's), and orders to a front proxy (``X-Accel-*``,
  ``X-Sendfile``, ``X-LIGHTTPD-send-file``); caching is made private;
- a redirect is kept only when it points into the appliance (its endpoint or its
  GUI origin) and stays a plain path there after percent-decoding; it is
  rewritten to that path, any other redirect is refused;
- every request has a total deadline, headers and body together: a watchdog
  shuts the upstream socket when it passes, so a slow-drip appliance cannot
  hold a web worker longer;
- responses are streamed.

Why not django-revproxy: it rewrites ``Location`` by replacing the upstream host
with the dashboard's and forwards cookies both ways; and why not urllib3's pool:
the deadline needs the socket of the one request. ``http.client`` gives both in
a few lines, one connection per request.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from urllib.parse import quote, unquote, urljoin, urlsplit

from django.conf import settings

HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection", "te", "trailer",
     "trailers", "transfer-encoding", "upgrade"}
)  # fmt: skip
DROPPED_REQUEST_HEADERS = HOP_BY_HOP | {
    "host", "cookie", "authorization", "content-length", "x-csrftoken", "forwarded", "x-forwarded-for",
    "x-forwarded-host", "x-forwarded-proto", "x-forwarded-port", "x-forwarded-prefix", "x-real-ip", "origin",
    "referer",
}  # fmt: skip
DROPPED_RESPONSE_HEADERS = HOP_BY_HOP | {
    "set-cookie", "set-cookie2", "content-length", "service-worker-allowed", "refresh", "clear-site-data",
    "x-frame-options", "strict-transport-security", "alt-svc",
    # Orders to a front proxy (nginx, Apache, lighttpd) in front of us, which would serve its own files
    # or redirect internally on the appliance's word.
    "x-sendfile", "x-lighttpd-send-file", "x-lighttpd-sendfile",
}  # fmt: skip
# Every header of these families is such an order too (nginx's X-Accel-Redirect, -Buffering, -Limit-Rate…).
DROPPED_RESPONSE_PREFIXES = ("x-accel-",)
CHUNK = 64 * 1024
CONNECT_TIMEOUT = 3.0
READ_TIMEOUT = 30.0  # one socket read; the deadline bounds the whole request
_CONTROL = re.compile(r"[\x00-\x1f\x7f\\]")


class ProxyRefused(Exception):
    """The request may not be forwarded; ``status`` is what the browser gets."""

    def __init__(self, message: str, status: int = 502):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int

    @property
    def netloc(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def origin(self) -> str:
        return f"http://{self.netloc}"


def allowed_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(n, strict=False) for n in settings.ADMINVMS["GUI_ALLOWED_NETWORKS"]]


def parse_endpoint(recorded: str) -> Endpoint:
    """The recorded ``host:port``, checked against the allowed networks."""
    parts = urlsplit(f"//{recorded}")
    try:
        address = ipaddress.ip_address(parts.hostname or "")
        port = parts.port
    except ValueError as exc:
        raise ProxyRefused("The appliance's management endpoint is not an IP address and port.") from exc
    if not port:
        raise ProxyRefused("The appliance's management endpoint has no port.")
    if not any(address in network for network in allowed_networks()):
        raise ProxyRefused("The appliance's management endpoint is outside the networks the dashboard may reach.")
    return Endpoint(str(address), port)


def upstream_path(path: str, default: str) -> str:
    """The path on the appliance: the request's, or the category's GUI path; never above its root."""
    path = path or default.lstrip("/")
    segments = path.split("/")
    if any(segment in {"..", "."} for segment in segments) or "\\" in path or "\x00" in path:
        raise ProxyRefused("That path is not allowed.", status=400)
    return "/" + quote(path, safe="/:@!$&'()*+,;=-._~")


def _fully_decoded(path: str) -> str:
    """``path`` percent-decoded until nothing changes (``%252e`` is ``%2e`` is ``.``)."""
    for _ in range(5):
        decoded = unquote(path)
        if decoded == path:
            return path
        path = decoded
    raise ProxyRefused("The appliance redirected to a path encoded over and over; the dashboard does not follow.")


def rewrite_location(location: str, *, endpoint: Endpoint, requested: str, public_host: str) -> str:
    """A redirect into the appliance, as a path on its GUI origin; any other is refused.

    "Into the appliance" means to its management endpoint or to its GUI origin
    (``public_host``), and to a path that stays one after percent-decoding: no dot
    segments (``%2e%2e``), no backslash or control character, no ``//`` that a
    browser reads as another host (``/%2f``), nothing under the reserved prefix.
    """
    refused = ProxyRefused("The appliance redirected outside itself; the dashboard does not follow.")
    if _CONTROL.search(location):
        raise refused
    parts = urlsplit(urljoin(f"{endpoint.origin}{requested}", location))
    try:
        port = parts.port
    except ValueError as exc:
        raise refused from exc
    netloc = (parts.hostname or "", port or {"http": 80, "https": 443}.get(parts.scheme))
    public = urlsplit(f"//{public_host}")
    if parts.scheme not in {"http", "https"} or netloc not in {
        (endpoint.host, endpoint.port),
        (public.hostname, public.port or {"http": 80, "https": 443}.get(parts.scheme)),
    }:
        raise refused
    path = parts.path or "/"
    decoded = _fully_decoded(path)
    segments = decoded.split("/")
    if (
        _CONTROL.search(decoded)
        or any(segment in {".", ".."} for segment in segments)
        or decoded.startswith("//")
        or (decoded + "/").startswith("/__adminvms__/")
    ):
        raise refused
    return path + (f"?{parts.query}" if parts.query else "")


def _private(cache_control: str) -> str:
    """Responses are per user: never in a shared cache, whatever the appliance says."""
    directives = [d.strip() for d in cache_control.split(",") if d.strip()]
    kept = [d for d in directives if d.split("=")[0].strip().lower() not in {"public", "s-maxage", "private"}]
    return ", ".join(["private", *kept])


def _connection_tokens(headers) -> set[str]:
    """Headers that ``Connection`` names are hop-by-hop too (RFC 9110, 7.6.1)."""
    return {
        token.strip().lower()
        for name, value in headers
        if name.lower() == "connection"
        for token in value.split(",")
        if token.strip()
    }


def request_headers(request, *, endpoint: Endpoint, public_origin: str) -> dict[str, str]:
    dropped = DROPPED_REQUEST_HEADERS | _connection_tokens(request.headers.items())
    headers = {name: value for name, value in request.headers.items() if name.lower() not in dropped}
    headers["Host"] = endpoint.netloc
    headers["Connection"] = "close"
    headers["X-Forwarded-Proto"] = public_origin.partition(":")[0]
    headers["X-Forwarded-Host"] = urlsplit(public_origin).netloc
    # The appliance's own CSRF checks compare these with its Host: translate ours
    # (the GUI host already refused requests from any other origin).
    for name in ("Origin", "Referer"):
        value = request.headers.get(name, "")
        if value == public_origin or value.startswith(public_origin + "/"):
            headers[name] = endpoint.origin + value[len(public_origin) :]
    return headers


def response_headers(
    upstream: list[tuple[str, str]], *, endpoint: Endpoint, requested: str, public_host: str
) -> list[tuple[str, str]]:
    """The appliance's headers the browser may see; repeated ones joined (one header each in Django)."""
    merged: dict[str, tuple[str, list[str]]] = {}
    dropped = DROPPED_RESPONSE_HEADERS | _connection_tokens(upstream)
    for name, value in upstream:
        lname = name.lower()
        if lname in dropped or lname.startswith(DROPPED_RESPONSE_PREFIXES):
            continue
        if lname == "location":
            value = rewrite_location(value, endpoint=endpoint, requested=requested, public_host=public_host)
        merged.setdefault(lname, (name, []))[1].append(value)
    out = [(name, ", ".join(values)) for name, values in merged.values()]
    cache = merged.get("cache-control")
    out = [(n, v) for n, v in out if n.lower() != "cache-control"]
    out.append(("Cache-Control", _private(", ".join(cache[1]) if cache else "")))
    return out


@dataclass
class Upstream:
    status: int
    headers: list[tuple[str, str]]
    body: Iterator[bytes]
    close: Callable[[], None] = field(repr=False)


class _Deadline:
    """Shuts the connection's socket when the request's time is up, wherever it is blocked."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self._timer: threading.Timer | None = None

    @property
    def remaining(self) -> float:
        return self.at - time.monotonic()

    @property
    def passed(self) -> bool:
        return self.remaining <= 0

    def arm(self, conn: http.client.HTTPConnection) -> None:
        def expire():
            if conn.sock is not None:
                with contextlib.suppress(OSError):
                    conn.sock.shutdown(socket.SHUT_RDWR)

        self._timer = threading.Timer(max(self.remaining, 0), expire)
        self._timer.daemon = True
        self._timer.start()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def refusal(self) -> ProxyRefused:
        return ProxyRefused(f"The appliance GUI did not answer within {self.seconds:g} seconds.", status=504)


def forward(request, *, endpoint: Endpoint, path: str, public_origin: str, deadline: float) -> Upstream:
    """Send the request to the appliance, all of it within ``deadline`` seconds."""
    timer = _Deadline(deadline)
    query = request.META.get("QUERY_STRING", "")
    conn = http.client.HTTPConnection(endpoint.host, endpoint.port, timeout=min(CONNECT_TIMEOUT, deadline))

    def close():
        timer.cancel()
        conn.close()

    try:
        conn.connect()
        conn.sock.settimeout(min(READ_TIMEOUT, max(timer.remaining, 0.001)))
        timer.arm(conn)
        conn.request(
            request.method,
            path + (f"?{query}" if query else ""),
            body=request.body or None,
            headers=request_headers(request, endpoint=endpoint, public_origin=public_origin),
        )
        response = conn.getresponse()
        if timer.passed:  # headers cut short by the watchdog look complete to http.client
            raise timer.refusal()
        headers = response_headers(
            response.getheaders(), endpoint=endpoint, requested=path, public_host=urlsplit(public_origin).netloc
        )
    except ProxyRefused:
        close()
        raise
    except (OSError, http.client.HTTPException) as exc:
        close()
        if timer.passed:
            raise timer.refusal() from exc
        raise ProxyRefused("The appliance GUI does not answer.", status=502) from exc
    return Upstream(response.status, headers, _stream(response, timer), close)


def _stream(response: http.client.HTTPResponse, timer: _Deadline) -> Iterator[bytes]:
    """The body as it comes; past the deadline the stream breaks off (raises), so the browser
    sees an incomplete response rather than a complete-looking short one."""
    while True:
        try:
            chunk = response.read1(CHUNK)
        except (OSError, http.client.HTTPException) as exc:
            if timer.passed:
                raise timer.refusal() from exc
            raise ProxyRefused("The appliance GUI broke off its answer.") from exc
        if timer.passed:
            raise timer.refusal()
        if not chunk:
            return
        yield chunk
