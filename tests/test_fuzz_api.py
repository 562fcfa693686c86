"""Schemathesis fuzzes every operation of the OpenAPI schema in-process: whatever
the input, the API never answers 500."""

from __future__ import annotations

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token

schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())


@pytest.fixture(params=["alice", "admin"])
def token(request, demo):
    """A member's token, and a provider admin's (who reaches the catalog writes)."""
    # Like Django's test client: keep the test's connection (and its transaction) across requests.
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    yield Token.objects.get_or_create(user=getattr(demo, request.param))[0].key
    for signal in (request_started, request_finished):
        signal.connect(close_old_connections)


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_input_makes_the_api_fail(case, token):
    case.call_and_validate(headers={"Authorization": f"Token {token}"}, checks=[schemathesis.checks.not_a_server_error])
