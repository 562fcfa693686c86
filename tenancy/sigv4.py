"""AWS Signature Version 4, checked on the server side (the header and the query-string forms).

Pure functions, no model: ``parse`` reads what a request claims (key, scope, time, signed
headers, signature), ``expected_signature`` computes what it should be from the secret,
exactly as botocore signs (``botocore.auth.SigV4Auth``: canonical request, string to sign,
derived key). ``tenancy.services.ec2_authenticate`` puts them together with the keys,
the time window and the replay check.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, unquote

ALGORITHM = "AWS4-HMAC-SHA256"
TIMESTAMP_FORMAT = "%Y%m%dT%H%M%SZ"
SERVICE = "ec2"


class SignatureRefused(Exception):
    """A request whose signature cannot be accepted; ``code`` is AWS's error code."""

    def __init__(self, code: str, message: str, status: int):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def missing(message: str) -> SignatureRefused:
    return SignatureRefused("MissingAuthenticationToken", message, 401)


def incomplete(message: str) -> SignatureRefused:
    return SignatureRefused("IncompleteSignature", message, 400)


def auth_failure(message: str = "AWS was not able to validate the provided access credentials.") -> SignatureRefused:
    return SignatureRefused("AuthFailure", message, 401)


def does_not_match() -> SignatureRefused:
    return SignatureRefused(
        "SignatureDoesNotMatch",
        "The request signature we calculated does not match the signature you provided. "
        "Check your secret access key and signing method.",
        403,
    )


@dataclass(frozen=True)
class SignedRequest:
    """What a request claims about its signature."""

    access_key: str
    timestamp: str  # as signed, e.g. 20261130T071200Z
    when: datetime
    scope_date: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str
    in_query: bool  # the query-string ("presigned") form
    expires: int | None  # X-Amz-Expires of the query-string form, seconds

    @property
    def scope(self) -> str:
        return f"{self.scope_date}/{self.region}/{self.service}/aws4_request"


def query_pairs(raw_query: str) -> list[tuple[str, str]]:
    """The query string's pairs, decoded (``+`` stays a plus, as SigV4 encodes spaces as ``%20``)."""
    pairs = []
    for part in raw_query.split("&"):
        if part:
            key, _, value = part.partition("=")
            pairs.append((unquote(key), unquote(value)))
    return pairs


def parse(*, headers: Mapping[str, str], query: list[tuple[str, str]]) -> SignedRequest:
    """The signature a request carries: in ``Authorization`` or in the ``X-Amz-*`` query parameters.

    ``headers`` is keyed by lower-case header name.
    """
    params = dict(query)
    authorization = headers.get("authorization", "")
    if "X-Amz-Signature" in params or "X-Amz-Algorithm" in params:
        if params.get("X-Amz-Algorithm") != ALGORITHM:
            raise incomplete(f"X-Amz-Algorithm must be {ALGORITHM}.")
        fields = {
            "Credential": params.get("X-Amz-Credential", ""),
            "SignedHeaders": params.get("X-Amz-SignedHeaders", ""),
            "Signature": params.get("X-Amz-Signature", ""),
        }
        timestamp = params.get("X-Amz-Date", "")
        try:
            expires = int(params.get("X-Amz-Expires", ""))
        except ValueError:
            raise incomplete("X-Amz-Expires must be a number of seconds.") from None
        in_query = True
    elif authorization:
        algorithm, _, rest = authorization.strip().partition(" ")
        if algorithm != ALGORITHM:
            raise incomplete(f"Only {ALGORITHM} (Signature Version 4) is accepted.")
        fields = {}
        for item in rest.split(","):
            name, _, value = item.strip().partition("=")
            fields[name] = value
        timestamp = headers.get("x-amz-date", "")
        expires = None
        in_query = False
    else:
        raise missing("The request carries no signature (an Authorization header or X-Amz-Signature).")

    if not all(fields.get(name) for name in ("Credential", "SignedHeaders", "Signature")):
        raise incomplete("The signature needs Credential, SignedHeaders and Signature.")
    credential = fields["Credential"].split("/")
    if len(credential) != 5 or credential[4] != "aws4_request":
        raise incomplete("Credential must be <access key>/<date>/<region>/<service>/aws4_request.")
    access_key, scope_date, region, service, _ = credential
    if not re.fullmatch(r"[A-Za-z0-9]{16,128}", access_key):
        raise auth_failure()
    if not re.fullmatch(r"[0-9a-f]{64}", fields["Signature"]):
        raise does_not_match()
    if service != SERVICE:
        raise incomplete(f"The credential is scoped to service '{service}'; this endpoint is '{SERVICE}'.")
    try:
        when = datetime.strptime(timestamp, TIMESTAMP_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise incomplete("X-Amz-Date must be given as YYYYMMDDTHHMMSSZ.") from None
    if scope_date != timestamp[:8]:
        raise incomplete("The credential's date does not match X-Amz-Date.")
    signed_headers = tuple(fields["SignedHeaders"].split(";"))
    if "host" not in signed_headers:
        raise incomplete("The Host header must be signed.")
    return SignedRequest(
        access_key=access_key,
        timestamp=timestamp,
        when=when,
        scope_date=scope_date,
        region=region,
        service=service,
        signed_headers=signed_headers,
        signature=fields["Signature"],
        in_query=in_query,
        expires=expires,
    )


def _path(path: str) -> str:
    """botocore's: dot segments and repeated slashes removed, then URI-encoded."""
    if not path:
        return "/"
    segments: list[str] = []
    for segment in path.split("/"):
        if segment and segment != ".":
            if segment == "..":
                if segments:
                    segments.pop()
            else:
                segments.append(segment)
    normalized = ("/" if path.startswith("/") else "") + "/".join(segments)
    if path.endswith("/") and segments:
        normalized += "/"
    return quote(normalized, safe="/~")


def _canonical_query(query: list[tuple[str, str]], *, drop_signature: bool) -> str:
    pairs = sorted(
        (quote(key, safe="-_.~"), quote(value, safe="-_.~"))
        for key, value in query
        if not (drop_signature and key == "X-Amz-Signature")
    )
    return "&".join(f"{key}={value}" for key, value in pairs)


def canonical_request(
    signed: SignedRequest, *, method: str, path: str, query: list[tuple[str, str]], headers: Mapping[str, str], body
) -> str:
    lines = [method.upper(), _path(path), _canonical_query(query, drop_signature=signed.in_query)]
    canonical_headers = []
    for name in sorted(set(signed.signed_headers)):
        value = headers.get(name)
        if value is None:
            raise incomplete(f"The signed header '{name}' is missing from the request.")
        canonical_headers.append(f"{name}:{' '.join(value.split())}")
    lines.append("\n".join(canonical_headers) + "\n")
    lines.append(";".join(sorted(set(signed.signed_headers))))
    # The hash of the body received, always: a client's X-Amz-Content-SHA256 must state the same one
    # (an UNSIGNED-PAYLOAD, or the hash of another body, would leave the body free to change).
    payload_hash = hashlib.sha256(body).hexdigest()
    if headers.get("x-amz-content-sha256", payload_hash) != payload_hash:
        raise does_not_match()
    lines.append(payload_hash)
    return "\n".join(lines)


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def expected_signature(signed: SignedRequest, secret: str, canonical: str) -> str:
    string_to_sign = "\n".join(
        [ALGORITHM, signed.timestamp, signed.scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = _hmac(f"AWS4{secret}".encode(), signed.scope_date)
    for part in (signed.region, signed.service, "aws4_request"):
        key = _hmac(key, part)
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


def check(signed: SignedRequest, secret: str, **request) -> None:
    """Raise ``SignatureDoesNotMatch`` unless ``signed`` is the request's signature under ``secret``."""
    expected = expected_signature(signed, secret, canonical_request(signed, **request))
    if not hmac.compare_digest(expected, signed.signature):
        raise does_not_match()
