"""Sign-in: API tokens that expire, stored as digests, listed and revoked by their owner; failed
sign-ins limited per user and per address; the production settings pass ``check --deploy``."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone
from knox.models import AuthToken
from rest_framework.test import APIClient

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "/api/v1/auth/token/"
TOKENS = "/api/v1/auth/tokens/"


def _password():
    return settings.ADMINVMS["DEMO_PASSWORD"]  # the demo fixture's


def _sign_in(username, password, address="127.0.0.1"):
    return APIClient(REMOTE_ADDR=address).post(TOKEN, {"username": username, "password": password}, format="json")


def _as(token) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def test_a_token_expires_and_only_its_digest_is_stored(demo):
    answer = _sign_in("alice", _password())
    assert answer.status_code == 200, answer.content
    body = answer.json()
    token = body["token"]
    assert _as(token).get("/api/v1/me/").json()["username"] == "alice"
    record = AuthToken.objects.get(token_key=body["token_key"])
    assert token not in (record.digest, record.token_key) and token.startswith(record.token_key)
    assert timedelta(hours=9) < record.expiry - timezone.now() <= timedelta(hours=10)
    AuthToken.objects.filter(pk=record.pk).update(expiry=timezone.now() - timedelta(seconds=1))
    assert _as(token).get("/api/v1/me/").status_code == 401


def test_owners_list_and_revoke_their_own_tokens_only(demo):
    first, second = (_sign_in("alice", _password()).json() for _ in range(2))
    bobs = _sign_in("bob", _password()).json()
    alice = _as(first["token"])
    listed = alice.get(TOKENS).json()
    assert {t["token_key"] for t in listed} == {first["token_key"], second["token_key"]}
    assert [t["current"] for t in listed if t["token_key"] == first["token_key"]] == [True]
    assert all("token" not in t and "digest" not in t for t in listed)
    assert alice.delete(f"{TOKENS}{bobs['token_key']}/").status_code == 404  # not hers: unknown
    assert _as(bobs["token"]).get("/api/v1/me/").status_code == 200
    assert alice.delete(f"{TOKENS}{second['token_key']}/").status_code == 204
    assert _as(second["token"]).get("/api/v1/me/").status_code == 401
    assert _as(first["token"]).get("/api/v1/me/").status_code == 200


@pytest.fixture
def limit(settings):
    settings.AXES_FAILURE_LIMIT = 3
    return 3


def test_failed_sign_ins_lock_the_user_out_from_that_address_only(demo, limit):
    for _ in range(limit - 1):
        assert _sign_in("alice", "guess", address="10.0.0.1").status_code == 400
    assert _sign_in("alice", "guess", address="10.0.0.1").status_code == 429  # the limit-th failure locks
    assert _sign_in("alice", _password(), address="10.0.0.1").status_code == 429  # the right password too
    # Nobody locks alice (or the provider's admin) out from everywhere by failing for her.
    assert _sign_in("alice", _password(), address="10.0.0.2").status_code == 200


def test_failed_sign_ins_lock_the_address_out_for_every_user(demo, limit):
    for n in range(limit - 1):
        assert _sign_in(f"nobody{n}", "guess", address="10.0.0.7").status_code == 400
    assert _sign_in("nobody", "guess", address="10.0.0.7").status_code == 429
    assert _sign_in("bob", _password(), address="10.0.0.7").status_code == 429
    assert _sign_in("bob", _password(), address="10.0.0.8").status_code == 200


def test_the_login_page_counts_failures_too(demo, limit, client):
    for _ in range(limit - 1):
        assert client.post("/accounts/login/", {"username": "rita", "password": "guess"}).status_code == 200
    assert client.post("/accounts/login/", {"username": "rita", "password": "guess"}).status_code == 429
    assert client.post("/accounts/login/", {"username": "rita", "password": _password()}).status_code == 429


def _check_deploy(**env) -> subprocess.CompletedProcess:
    environ = {
        key: value for key, value in os.environ.items() if not key.startswith(("ADMINVMS_", "DJANGO_", "DATABASE_"))
    }
    environ.update(DJANGO_SETTINGS_MODULE="adminvms_dashboard.settings", **env)
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=environ, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_production_settings_pass_check_deploy(tmp_path):
    production = {
        "ADMINVMS_SECURE": "1",
        "ADMINVMS_SECRET_KEY": os.urandom(40).hex(),
        "ADMINVMS_ALLOWED_HOSTS": "cloud.example.com",
        "ADMINVMS_DATA_DIR": str(tmp_path),
    }
    result = _check_deploy(**production)
    assert result.returncode == 0, result.stdout + result.stderr
    # The control: the embedded defaults are not production settings, and the check says so.
    result = _check_deploy(ADMINVMS_DATA_DIR=str(tmp_path))
    assert result.returncode != 0
    assert "SECURE_HSTS_SECONDS" in result.stdout + result.stderr


def test_the_embedded_secret_key_file_is_the_owners_alone(tmp_path):
    code = "from django.conf import settings; print(len(settings.SECRET_KEY))"
    environ = {key: value for key, value in os.environ.items() if not key.startswith("ADMINVMS_")}
    environ.update(DJANGO_SETTINGS_MODULE="adminvms_dashboard.settings", ADMINVMS_DATA_DIR=str(tmp_path))
    runs = [
        subprocess.Popen([sys.executable, "-c", f"import django; django.setup(); {code}"], cwd=ROOT, env=environ,
                         stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]  # fmt: skip
    assert {run.communicate(timeout=60)[0].strip() for run in runs} == {"67"}
    key = tmp_path / "secret_key"
    assert key.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir() if "secret" in p.name] == ["secret_key"]


def test_dashboard_pages_carry_a_content_security_policy(demo, web):
    response = web(demo.alice).get("/portal/")
    policy = response["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-eval" not in policy and "script-src 'self' 'unsafe-inline'" not in policy
    docs = web(demo.alice).get("/api/docs/")
    assert docs.status_code == 200 and b"<script>" not in docs.content  # the start-up script is a file
    assert web(demo.alice).get("/api/docs/?script=").status_code == 200
