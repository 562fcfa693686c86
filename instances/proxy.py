"""The appliance GUI reverse proxy: the dashboard forwards a member's browser to
the appliance's own web GUI without the member ever learning its address.

Safety rules, each tested:
- the upstream is the instance's recorded management endpoint and nothing else:
  never a host, port or URL from the request (the path only ever lands on that
  endpoint, and ``..`` segments are refused);
- the endpoint must lie in ``ADMINVMS_GUI_ALLOWED_NETWORKS``;
- hop-by-hop headers, cookies and ``Authorization`` are stripped on the way in,
  hop-by-hop headers and ``Set-Cookie`` on the way out (the browser's cookies
  belong to the dashboard);
- redirects to the appliance itself are rewritten under the proxy prefix; any
  other redirect is refused;
- responses are streamed.

Why not django-revproxy: it rewrites ``Location`` by replacing the upstream host
with the dashboard's, which loses our per-appliance path prefix and lets a
redirect to any other host through; it forwards cookies both ways. Adapting it
means overriding its private methods, so this module uses urllib3 (already
installed with requests) directly, in about a hundred lines.
"""

from __future__ import annotations

import ipaddress
import posixpath
from dataclasses import dataclass
from urllib.parse import quote, urljoin, urlsplit

import urllib3
from django.conf import settings

HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "trailers",
     "transfer-encoding", "upgrade"}
)  # fmt: skip
DROPPED_REQUEST_HEADERS = HOP_BY_HOP | {"host", "cookie", "authorization", "content-length", "x-csrftoken"}
DROPPED_RESPONSE_HEADERS = HOP_BY_HOP | {"set-cookie", "content-length"}
CHUNK = 64 * 1024

_pool = urllib3.PoolManager(num_pools=20, maxsize=8, retries=False, timeout=urllib3.Timeout(connect=3.0, read=60.0))


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
        return f"{self.host}:{self.port}"


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


def rewrite_location(location: str, *, endpoint: Endpoint, requested: str, prefix: str) -> str:
    """A redirect to the appliance itself, moved under ``prefix``; any other is refused."""
    absolute = urljoin(f"http://{endpoint.netloc}{requested}", location)
    parts = urlsplit(absolute)
    if parts.scheme not in {"http", "https"} or parts.hostname != endpoint.host or (parts.port or 80) != endpoint.port:
        raise ProxyRefused("The appliance redirected outside itself; the dashboard does not follow.")
    target = posixpath.normpath(parts.path or "/")
    rewritten = prefix.rstrip("/") + "/" + target.lstrip("/")
    return rewritten + (f"?{parts.query}" if parts.query else "")


def forward(request, *, endpoint: Endpoint, path: str, prefix: str):
    """Send the request to the appliance; return (status, headers, body iterator, closer)."""
    headers = {name: value for name, value in request.headers.items() if name.lower() not in DROPPED_REQUEST_HEADERS}
    headers["Host"] = endpoint.netloc
    headers["X-Forwarded-Proto"] = request.scheme
    headers["X-Forwarded-Prefix"] = prefix
    query = request.META.get("QUERY_STRING", "")
    url = f"http://{endpoint.netloc}{path}" + (f"?{query}" if query else "")
    try:
        upstream = _pool.urlopen(
            request.method,
            url,
            body=request.body or None,
            headers=headers,
            redirect=False,
            preload_content=False,
            decode_content=False,
        )
    except urllib3.exceptions.HTTPError as exc:
        raise ProxyRefused("The appliance GUI does not answer.", status=502) from exc
    out_headers = []
    for name, value in upstream.headers.items():
        lname = name.lower()
        if lname in DROPPED_RESPONSE_HEADERS:
            continue
        if lname == "location":
            try:
                value = rewrite_location(value, endpoint=endpoint, requested=path, prefix=prefix)
            except ProxyRefused:
                upstream.release_conn()
                raise
        out_headers.append((name, value))
    return upstream.status, out_headers, upstream.stream(CHUNK, decode_content=False), upstream.release_conn
