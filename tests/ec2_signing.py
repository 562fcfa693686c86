"""Requests to /ec2/ signed by botocore's own SigV4 signer, sent through Django's test client."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlencode, urlsplit
from xml.etree import ElementTree as ET

from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from django.test import Client

REGION = "RegionOne"
FORM = "application/x-www-form-urlencoded; charset=utf-8"
DESCRIBE = {"Action": "DescribeRegions", "Version": "2016-11-15"}


def signed_request(access, secret, params, *, when=None, region=REGION, service="ec2", query=False, expires=300):
    """A request to /ec2/ signed by botocore at ``when`` (default now): the header form, or the query-string form."""
    when = when or datetime.now(UTC)
    credentials = Credentials(access, secret)
    if query:
        request = AWSRequest(method="GET", url=f"http://testserver/ec2/?{urlencode(params)}", headers={})
        auth = SigV4QueryAuth(credentials, service, region, expires=expires)
    else:
        request = AWSRequest(
            method="POST", url="http://testserver/ec2/", data=urlencode(params), headers={"Content-Type": FORM}
        )
        auth = SigV4Auth(credentials, service, region)
    # SigV4Auth.add_auth, with the time chosen by the test.
    request.context["timestamp"] = when.strftime("%Y%m%dT%H%M%SZ")
    auth._modify_request_before_signing(request)
    signature = auth.signature(auth.string_to_sign(request, auth.canonical_request(request)), request)
    auth._inject_signature_to_request(request, signature)
    return request


def send(request, *, body=None, **extra):
    """Send a signed AWSRequest through Django's test client, headers as they were signed."""
    headers = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in request.headers.items() if k != "Content-Type"}
    url = urlsplit(request.url)
    path = f"{url.path}?{url.query}" if url.query else url.path
    data = request.body if body is None else body
    response = Client().generic(
        request.method,
        path,
        data=data or b"",
        content_type=request.headers.get("Content-Type", ""),
        HTTP_HOST="testserver",
        **headers,
        **extra,
    )
    return response


def code(response) -> str:
    root = ET.fromstring(response.content)
    assert root.tag == "Response" and root.find("RequestID") is not None, response.content
    return root.find("Errors/Error/Code").text


def call(access: str, secret: str, action: str, **params):
    """``Action`` with ``params`` (EC2's flat keys: ``InstanceId.1``…), signed now; the response."""
    return send(signed_request(access, secret, {"Action": action, "Version": "2016-11-15", **params}))


def xml(response) -> ET.Element:
    """The success document, its namespace stripped from the tags."""
    assert response.status_code == 200, response.content
    root = ET.fromstring(response.content)
    for element in root.iter():
        element.tag = element.tag.rpartition("}")[2]
    return root
