"""The client's address as the sign-in limits count it."""

from __future__ import annotations

from django.conf import settings


def client_address(request) -> str:
    """The peer's address; behind ``TRUSTED_PROXY_COUNT`` proxies, the address the first of them saw.

    Each proxy appends the address it received the request from to ``X-Forwarded-For``, so the
    entry that many places from the right is the client's; what comes before it is whatever the
    client claimed, and never trusted.
    """
    proxies = settings.TRUSTED_PROXY_COUNT
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
    if proxies > 0 and len(forwarded) >= proxies:
        return forwarded[-proxies]
    return request.META.get("REMOTE_ADDR", "")
