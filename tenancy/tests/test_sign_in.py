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


def test_a_success_resets_only_the_account_that_succeeded(demo, limit, client):
    """Issue 21: a guess at admin, then alice's own sign-in from the same address, again and again."""
    for _ in range(limit - 1):
        assert _sign_in("admin", "guess", address="10.0.1.1").status_code == 400
        assert _sign_in("alice", _password(), address="10.0.1.1").status_code == 200
        assert client.post("/accounts/login/", {"username": "alice", "password": _password()}).status_code == 302
    assert _sign_in("admin", "guess", address="10.0.1.1").status_code == 429  # the limit-th failure still locks
    assert _sign_in("admin", _password(), address="10.0.1.1").status_code == 429
    # The account that succeeded starts again: its own failures are gone, nobody else's.
    assert _sign_in("bob", "guess", address="10.0.1.2").status_code == 400
    assert _sign_in("bob", _password(), address="10.0.1.2").status_code == 200
    for _ in range(limit - 1):
        assert _sign_in("bob", "guess", address="10.0.1.2").status_code == 400


@pytest.fixture
def user_limit(settings, limit):
    settings.ADMINVMS = {**settings.ADMINVMS, "LOGIN_USER_FAILURE_LIMIT": 5}
    return 5


def test_one_user_name_guessed_from_many_addresses_is_refused(demo, user_limit, client):
    for n in range(user_limit):
        assert _sign_in("rita", "guess", address=f"203.0.113.{n}").status_code == 400
    # From every other address, the right password too, on the API and the login page alike.
    assert _sign_in("rita", "guess", address="203.0.113.99").status_code == 429
    assert _sign_in("rita", _password(), address="198.51.100.7").status_code == 429
    page = client.post("/accounts/login/", {"username": "rita", "password": _password()})
    assert page.status_code == 429
    assert _sign_in("alice", _password(), address="203.0.113.98").status_code == 200  # other user names pass


def test_nobody_locks_the_providers_admin_out_from_where_the_admin_signs_in(demo, user_limit):
    assert _sign_in("admin", _password(), address="192.0.2.10").status_code == 200  # the admin's office
    for n in range(3 * user_limit):
        _sign_in("admin", "guess", address=f"203.0.113.{n}")
    assert _sign_in("admin", _password(), address="203.0.113.200").status_code == 429  # a new address: refused
    assert _sign_in("admin", _password(), address="192.0.2.10").status_code == 200  # where the admin works: not


def _manage_check(*flags, **env) -> subprocess.CompletedProcess:
    environ = {
        key: value for key, value in os.environ.items() if not key.startswith(("ADMINVMS_", "DJANGO_", "DATABASE_"))
    }
    environ.update(DJANGO_SETTINGS_MODULE="adminvms_dashboard.settings", **env)
    return subprocess.run(
        [sys.executable, "manage.py", "check", *flags], cwd=ROOT, env=environ, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip


def _check_deploy(**env) -> subprocess.CompletedProcess:
    return _manage_check("--deploy", "--fail-level", "WARNING", **env)


def _production(tmp_path, **env) -> dict[str, str]:
    return {
        "ADMINVMS_SECURE": "1",
        "ADMINVMS_SECRET_KEY": os.urandom(40).hex(),
        "ADMINVMS_ALLOWED_HOSTS": "cloud.example.com",
        "ADMINVMS_DATA_DIR": str(tmp_path),
        **env,
    }


def test_production_settings_pass_check_deploy(tmp_path):
    result = _check_deploy(**_production(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    # The control: the embedded defaults are not production settings, and the check says so.
    result = _check_deploy(ADMINVMS_DATA_DIR=str(tmp_path))
    assert result.returncode != 0
    assert "SECURE_HSTS_SECONDS" in result.stdout + result.stderr


def test_check_deploy_fails_while_openstack_locks_from_the_service_project(tmp_path):
    """Issue 21: the openstack backend's default lock scope lets the service project's members unlock."""
    production = _production(tmp_path, OS_CLOUD="provider")
    result = _check_deploy(**production)
    assert result.returncode != 0
    assert "adminvms.E010" in result.stderr and "ADMINVMS_OS_LOCK_CLOUD" in result.stderr, result.stderr
    assert _check_deploy(**production, ADMINVMS_OS_LOCK_CLOUD="provider-lock").returncode == 0
    # Every other command (make run's migrate among them) warns and goes on.
    run = _manage_check(ADMINVMS_DATA_DIR=str(tmp_path), OS_CLOUD="provider")
    assert run.returncode == 0 and "adminvms.W010" in run.stderr + run.stdout, run.stderr


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
