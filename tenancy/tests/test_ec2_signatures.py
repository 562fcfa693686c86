"""SigV4 on the EC2 endpoint: requests signed by botocore's own signer, every refusal with its EC2 code."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest
from django.core.management import call_command
from django.test import Client

from tenancy import crypto, services
from tenancy.models import Ec2Credential
from tests.ec2_signing import DESCRIBE, code, send, signed_request


@pytest.fixture
def key(demo):
    credential, secret = services.ec2_credential_create(user=demo.alice)
    return credential.access, secret


def test_a_signed_request_is_answered_and_the_secret_is_stored_encrypted(key, demo):
    access, secret = key
    response = send(signed_request(access, secret, DESCRIBE))
    assert response.status_code == 200, response.content
    assert b"<regionName>RegionOne</regionName>" in response.content
    stored = Ec2Credential.objects.get(access=access)
    assert secret not in stored.secret_encrypted
    assert crypto.decrypt(stored.secret_encrypted) == secret
    assert stored.last_used_at is not None


def test_no_signature_is_missing_authentication_token(db):
    response = Client().post("/ec2/", DESCRIBE)
    assert (response.status_code, code(response)) == (401, "MissingAuthenticationToken")


def test_a_wrong_secret_does_not_match(key):
    access, _ = key
    response = send(signed_request(access, "not-the-secret", DESCRIBE))
    assert (response.status_code, code(response)) == (403, "SignatureDoesNotMatch")


def test_a_body_changed_after_signing_does_not_match(key):
    access, secret = key
    request = signed_request(access, secret, {**DESCRIBE, "RegionName.1": "RegionOne"})
    response = send(request, body=urlencode({**DESCRIBE, "RegionName.1": "RegionTwo"}))
    assert (response.status_code, code(response)) == (403, "SignatureDoesNotMatch")


def test_a_content_hash_header_that_lies_about_the_body_does_not_match(key):
    access, secret = key
    request = signed_request(access, secret, DESCRIBE)
    response = send(
        request, body=urlencode({**DESCRIBE, "RegionName.1": "x"}), HTTP_X_AMZ_CONTENT_SHA256="UNSIGNED-PAYLOAD"
    )
    assert (response.status_code, code(response)) == (403, "SignatureDoesNotMatch")


def test_an_unknown_key_is_an_auth_failure(db):
    response = send(signed_request("AKIAUNKNOWNUNKNOWN00", "secret", DESCRIBE))
    assert (response.status_code, code(response)) == (401, "AuthFailure")


def test_a_revoked_key_is_an_auth_failure(key, demo):
    access, secret = key
    assert send(signed_request(access, secret, DESCRIBE)).status_code == 200
    services.ec2_credential_revoke(user=demo.alice, access=access)
    response = send(signed_request(access, secret, DESCRIBE))
    assert (response.status_code, code(response)) == (401, "AuthFailure")


def test_the_key_of_a_deactivated_user_is_an_auth_failure(key, demo):
    access, secret = key
    demo.alice.is_active = False
    demo.alice.save()
    assert code(send(signed_request(access, secret, DESCRIBE))) == "AuthFailure"


@pytest.mark.parametrize(
    ("offset", "accepted"),
    [
        (timedelta(minutes=-6), False),
        (timedelta(minutes=6), False),
        (timedelta(minutes=-4), True),
        (timedelta(minutes=4), True),
    ],
)
def test_a_timestamp_outside_five_minutes_has_expired(key, offset, accepted):
    access, secret = key
    response = send(signed_request(access, secret, DESCRIBE, when=datetime.now(UTC) + offset))
    if accepted:
        assert response.status_code == 200, response.content
    else:
        assert (response.status_code, code(response)) == (400, "RequestExpired")


def test_a_replayed_request_that_changes_something_is_refused(key, demo):
    access, secret = key
    run = {"Action": "RunInstances", "Version": "2016-11-15", "MinCount": "1", "MaxCount": "1"}
    request = signed_request(access, secret, run)
    first = send(request)
    assert first.status_code == 200, first.content
    replay = send(request)
    assert (replay.status_code, code(replay)) == (401, "AuthFailure")
    assert b"received before" in replay.content
    assert demo.acme.instances.count() == 1


def test_the_same_describe_twice_in_one_second_is_answered_twice(key):
    """botocore signs to the second and leaves its invocation id unsigned: a waiter's polls may sign alike."""
    access, secret = key
    request = signed_request(access, secret, DESCRIBE)
    assert send(request).status_code == 200
    assert send(request).status_code == 200


def test_a_credential_for_another_region_is_an_auth_failure(key):
    access, secret = key
    response = send(signed_request(access, secret, DESCRIBE, region="us-east-1"))
    assert (response.status_code, code(response)) == (401, "AuthFailure")
    assert b"RegionOne" in response.content


def test_a_credential_for_another_service_is_an_incomplete_signature(key):
    access, secret = key
    response = send(signed_request(access, secret, DESCRIBE, service="s3"))
    assert (response.status_code, code(response)) == (400, "IncompleteSignature")


def test_a_malformed_authorization_header_is_an_incomplete_signature(db):
    response = Client().post("/ec2/", DESCRIBE, HTTP_AUTHORIZATION="AWS4-HMAC-SHA256 Credential=x")
    assert (response.status_code, code(response)) == (400, "IncompleteSignature")
    response = Client().post("/ec2/", DESCRIBE, HTTP_AUTHORIZATION="AWS AKIA:c2lnbmF0dXJl")
    assert (response.status_code, code(response)) == (400, "IncompleteSignature")


def test_the_query_string_form_is_accepted_and_checked(key):
    access, secret = key
    assert send(signed_request(access, secret, DESCRIBE, query=True)).status_code == 200

    wrong = signed_request(access, "not-the-secret", DESCRIBE, query=True)
    assert code(send(wrong)) == "SignatureDoesNotMatch"

    tampered = signed_request(access, secret, {**DESCRIBE, "RegionName.1": "RegionOne"}, query=True)
    tampered.url = tampered.url.replace("RegionName.1=RegionOne", "RegionName.1=RegionTwo")
    assert code(send(tampered)) == "SignatureDoesNotMatch"

    late = signed_request(
        access, secret, DESCRIBE, query=True, expires=60, when=datetime.now(UTC) - timedelta(minutes=2)
    )
    response = send(late)
    assert (response.status_code, code(response)) == (400, "RequestExpired")


def test_a_replayed_query_string_request_that_changes_something_is_refused(key, demo):
    access, secret = key
    run = {"Action": "RunInstances", "Version": "2016-11-15", "MinCount": "1", "MaxCount": "1"}
    request = signed_request(access, secret, run, query=True)
    assert send(request).status_code == 200
    assert code(send(request)) == "AuthFailure"
    assert demo.acme.instances.count() == 1


def test_secrets_rotate_to_a_new_key_and_an_unknown_key_opens_nothing(settings, demo):
    old, new = crypto.generate_key(), crypto.generate_key()
    settings.ADMINVMS = {**settings.ADMINVMS, "EC2_SECRET_KEYS": [old]}
    credential, secret = services.ec2_credential_create(user=demo.alice)
    before = Ec2Credential.objects.get(access=credential.access).secret_encrypted

    settings.ADMINVMS = {**settings.ADMINVMS, "EC2_SECRET_KEYS": [new, old]}
    call_command("ec2_credentials", "rotate", stdout=open("/dev/null", "w"))  # noqa: SIM115
    after = Ec2Credential.objects.get(access=credential.access).secret_encrypted
    assert after != before

    settings.ADMINVMS = {**settings.ADMINVMS, "EC2_SECRET_KEYS": [new]}
    assert send(signed_request(credential.access, secret, DESCRIBE)).status_code == 200

    settings.ADMINVMS = {**settings.ADMINVMS, "EC2_SECRET_KEYS": [crypto.generate_key()]}
    assert code(send(signed_request(credential.access, secret, DESCRIBE))) == "AuthFailure"


def test_the_secret_never_reaches_a_log(demo, caplog):
    caplog.set_level(logging.DEBUG)
    credential, secret = services.ec2_credential_create(user=demo.alice)
    send(signed_request(credential.access, secret, DESCRIBE))
    send(signed_request(credential.access, "wrong", DESCRIBE))
    send(signed_request(credential.access, secret, {"Action": "Nope"}))
    assert caplog.records
    assert secret not in caplog.text


def test_malformed_keys_and_signatures_are_refused_before_any_lookup(key):
    access, secret = key
    request = signed_request(access, secret, DESCRIBE, query=True)
    request.url = request.url.rsplit("X-Amz-Signature=", 1)[0] + "X-Amz-Signature=%C3%A9"
    assert code(send(request)) == "SignatureDoesNotMatch"
    request = signed_request("AKIA\x00" + "A" * 15, secret, DESCRIBE, query=True)
    assert code(send(request)) == "AuthFailure"
