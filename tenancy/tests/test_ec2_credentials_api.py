"""The EC2 access keys through the REST API and ``manage.py ec2_credentials``."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from tenancy import crypto
from tenancy.models import Ec2Credential
from tenancy.services import membership_ensure
from tests.ec2_signing import DESCRIBE, code, send, signed_request

URL = "/api/v1/ec2-credentials/"


def test_a_member_creates_lists_and_revokes_keys(api, demo):
    client = api(demo.alice)
    created = client.post(URL, {}, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["access"].startswith("AKIA") and len(body["access"]) == 20
    assert len(body["secret"]) == 40 and body["project"] == "acme"
    assert created["Cache-Control"] == "no-store"
    assert send(signed_request(body["access"], body["secret"], DESCRIBE)).status_code == 200

    listed = client.get(URL).json()
    assert [k["access"] for k in listed] == [body["access"]]
    assert "secret" not in listed[0] and body["secret"] not in str(listed)

    assert api(demo.bob).delete(f"{URL}{body['access']}/").status_code == 404  # not bob's
    assert client.delete(f"{URL}{body['access']}/").status_code == 204
    assert client.get(URL).json() == []
    assert code(send(signed_request(body["access"], body["secret"], DESCRIBE))) == "AuthFailure"
    assert client.delete(f"{URL}{body['access']}/").status_code == 404


def test_the_project_a_key_acts_for(api, demo):
    assert api(demo.alice).post(URL, {"project": "globex"}, format="json").status_code == 400
    membership_ensure(user=demo.alice, project=demo.globex)
    alice = type(demo.alice).objects.get(pk=demo.alice.pk)  # a new request reads the new role
    answer = api(alice).post(URL, {}, format="json")
    assert answer.status_code == 400 and "project" in answer.json()
    assert api(alice).post(URL, {"project": "globex"}, format="json").json()["project"] == "globex"
    assert api(demo.rita).post(URL, {}, format="json").status_code == 201  # a reader's key only describes
    assert api(demo.admin).post(URL, {}, format="json").json()["project"] is None
    assert api(None).post(URL, {}, format="json").status_code in (401, 403)
    assert Ec2Credential.objects.count() == 3


def test_a_user_holds_ten_keys_at_most(api, demo):
    client = api(demo.alice)
    for _ in range(10):
        assert client.post(URL, {}, format="json").status_code == 201
    assert client.post(URL, {}, format="json").status_code == 409
    assert Ec2Credential.objects.filter(user=demo.alice).count() == 10


def test_the_management_command(demo):
    out = io.StringIO()
    call_command("ec2_credentials", "create", "alice", stdout=out)
    access = out.getvalue().split()[2]
    secret = out.getvalue().split()[5]
    assert send(signed_request(access, secret, DESCRIBE)).status_code == 200
    out = io.StringIO()
    call_command("ec2_credentials", "list", "alice", stdout=out)
    assert access in out.getvalue() and secret not in out.getvalue()
    call_command("ec2_credentials", "revoke", "alice", access, stdout=io.StringIO())
    assert code(send(signed_request(access, secret, DESCRIBE))) == "AuthFailure"
    with pytest.raises(CommandError, match="No such access key"):
        call_command("ec2_credentials", "revoke", "alice", access, stdout=io.StringIO())
    with pytest.raises(CommandError, match="No project"):
        call_command("ec2_credentials", "create", "alice", "--project", "nope", stdout=io.StringIO())
    out = io.StringIO()
    call_command("ec2_credentials", "new-key", stdout=out)
    assert crypto._fernet((out.getvalue().strip(),), "unused")
