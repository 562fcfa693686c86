"""The OpenAPI schema is a contract clients can generate code from.

Schemathesis fuzzes every operation of the schema in-process and sends each case as
every demo role and anonymously; the known cases below make what random input
rarely does (real instances of every category, the launch answer, conflicts). Every
answer must be documented: never a 500, a documented status code and content type,
and a body that matches the schema.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from knox.models import AuthToken

from conftest import DEMO_PASSWORD
from instances import services
from instances.models import HealBreaker, Rollout
from tests.factories import CategoryFactory, InstanceFactory

schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())

ROLES = ("admin", "alice", "rita", "bob", "gina", None)  # None: anonymous
CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
]


@pytest.fixture
def world(demo):
    """The demo with an ACTIVE instance of every category in each project (with the
    backend details the restricted view hides), and the headers of every role."""
    # Like Django's test client: keep the test's connection (and its transaction) across requests.
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    instances = {
        (slug, project.slug): InstanceFactory(
            name=f"{slug}-{project.slug}",
            category=category,
            project=project,
            flavor=category.default_flavor,
            backend_id=f"server-{slug}-{project.slug}",
            host="compute-1",
            addresses={"project": ["192.0.2.10"], "management": ["198.51.100.10"]},
            management_endpoint="198.51.100.10:8080",
            metadata={"adminvms_category": slug},
        )
        for project in (demo.acme, demo.globex)
        for slug, category in demo.categories.items()
    }
    tokens = {role: AuthToken.objects.create(user=getattr(demo, role))[1] for role in ROLES if role}
    # The fleet: a rollout under way and an open auto-heal breaker.
    rollout = services.rollout_start(
        user=demo.admin, category=demo.categories["cache"], image=demo.images["cache-redis"]
    )
    breaker = HealBreaker.objects.create(scope="category", key="vsa", unhealthy=3, total=5, reason="3 of 5")
    # A category no instance ever had, kept by a finished rollout's history (issue 21: its DELETE was a 500).
    retired = CategoryFactory(slug="retired", management="provider", user_operations=[])
    Rollout.objects.create(category=retired, image=demo.images["lb-amphora"], status="succeeded", created_by=demo.admin)
    yield SimpleNamespace(
        demo=demo,
        instances=instances,
        rollout=rollout,
        breaker=breaker,
        headers={role: {"Authorization": f"Token {tokens[role]}"} if role else {} for role in ROLES},
    )
    for signal in (request_started, request_finished):
        signal.connect(close_old_connections)


# Deterministic: the same cases every run (derandomize, no example database). Twenty
# examples per operation, on top of schemathesis' coverage cases, keep this file near a
# minute on two cores.
@schema.parametrize()
@settings(max_examples=20, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
def test_every_answer_is_documented(case, world):
    for role, headers in world.headers.items():
        _call_as(role, headers, case)


def _call_as(role, headers, case):
    """``case`` sent as ``role``, validated; a failure says who sent it."""
    try:
        return case.call_and_validate(headers=headers, checks=CHECKS)
    except schemathesis.errors.FailureGroup as exc:
        raise schemathesis.errors.FailureGroup(
            list(exc.exceptions), f"As {role or 'anonymous'}: {exc.message}"
        ) from None


INSTANCES, INSTANCE = "/api/v1/instances/", "/api/v1/instances/{id}/"
ACTION, EVENTS = "/api/v1/instances/{id}/action/", "/api/v1/instances/{id}/events/"
CATEGORY, CATEGORY_FLAVORS = "/api/v1/categories/{slug}/", "/api/v1/categories/{slug}/flavors/"
ROLLOUTS, ROLLOUT, BREAKERS = "/api/v1/rollouts/", "/api/v1/rollouts/{id}/", "/api/v1/heal-breakers/"


def _known(method: str, path: str, expect: dict | None = None, *, pk=None, slug=None, **kwargs):
    """A request (``pk``, ``slug``: its path parameter) and, for some roles, the status it is there for."""
    path_parameters = {"id": pk} if pk is not None else {"slug": slug} if slug is not None else {}
    return schema[path][method].Case(path_parameters=path_parameters, **kwargs), expect or {}


def _known_cases(world) -> list:
    """Requests on real objects, in an order where each still finds the state it is about."""
    ids = {key: str(obj.pk) for key, obj in world.instances.items()}
    reboot = {"action": "reboot"}
    huge = {"name": "m1.huge", "vcpus": 8, "ram_mb": 16384, "disk_gb": 160}
    return [
        *(_known("GET", INSTANCES, query={"category": slug}) for slug in ("standard", "lb", "vsa", "cache", "all")),
        _known("GET", INSTANCES, query={"status": "ACTIVE,DELETED", "project": "acme"}),
        *(_known("GET", INSTANCE, {"admin": 200, None: 401}, pk=pk) for pk in ids.values()),
        _known("GET", INSTANCE, {"alice": 200, "rita": 200, "bob": 404}, pk=ids["lb", "acme"]),
        _known("GET", EVENTS, pk=ids["standard", "acme"]),
        # The launch answer: one instance, and with count > 1 `instances` too.
        _known("POST", INSTANCES, {"admin": 202, "alice": 202}, body={"name": "web", "count": 2, "project": "acme"}),
        _known("POST", INSTANCES, {"alice": 202, "bob": 202}, body={"name": "vsa", "category": "vsa"}),
        _known("POST", INSTANCES, {"alice": 403, "bob": 403}, body={"name": "lb", "category": "lb"}),
        _known("POST", INSTANCES, {"alice": 409}, body={"name": "vsa", "category": "vsa", "count": 3}),
        _known("POST", ACTION, {"alice": 202, "rita": 403}, pk=ids["standard", "acme"], body=reboot),
        _known("POST", ACTION, {"alice": 409, "bob": 404}, pk=ids["standard", "acme"], body=reboot),
        _known("POST", ACTION, {"admin": 202, "alice": 403}, pk=ids["lb", "acme"], body=reboot),
        _known("DELETE", INSTANCE, {"bob": 202, "gina": 403, "alice": 404}, pk=ids["vsa", "globex"]),
        # Heals by hand are the provider's; replacements the rollouts'.
        _known("POST", ACTION, {"admin": 202, "alice": 403}, pk=ids["vsa", "acme"], body={"action": "heal"}),
        _known("POST", ACTION, {"admin": 400}, pk=ids["lb", "acme"], body={"action": "replace"}),
        # The fleet: provider admins only.
        *(_known("GET", path, {"admin": 200, "alice": 403, None: 401}) for path in (ROLLOUTS, BREAKERS)),
        _known("GET", ROLLOUT, {"admin": 200, "bob": 403}, pk=str(world.rollout.pk)),
        _known("POST", ROLLOUTS, {"admin": 201, "alice": 403}, body={"category": "vsa", "batch_size": 2}),
        _known("POST", ROLLOUTS, {"admin": 409}, body={"category": "vsa"}),
        _known("POST", ROLLOUTS, {"admin": 400}, body={"category": "standard", "batch_size": 0}),
        _known("POST", f"{ROLLOUT}pause/", {"admin": 200, "rita": 403}, pk=str(world.rollout.pk)),
        _known("POST", f"{ROLLOUT}pause/", {"admin": 409}, pk=str(world.rollout.pk)),
        _known("POST", f"{ROLLOUT}resume/", {"admin": 200}, pk=str(world.rollout.pk)),
        _known("POST", f"{ROLLOUT}abort/", {"admin": 200}, pk=str(world.rollout.pk)),
        _known("POST", f"{BREAKERS}{{id}}/resume/", {"admin": 200, "gina": 403}, pk=world.breaker.pk),
        _known("POST", f"{BREAKERS}{{id}}/resume/", {"admin": 409}, pk=world.breaker.pk),
        # The catalog, and its conflicts.
        _known("DELETE", CATEGORY, {"admin": 409, "alice": 403}, slug="vsa"),
        _known("DELETE", CATEGORY, {"admin": 409, "alice": 403, "rita": 403}, slug="retired"),
        _known("PATCH", CATEGORY, {"admin": 409}, slug="vsa", body={"kind": "container"}),
        _known("PATCH", CATEGORY, {"admin": 200}, slug="vsa", body={"gui_path": "/ui/"}),
        _known("DELETE", CATEGORY_FLAVORS, {"admin": 409}, slug="lb", query={"flavor": "m1.small"}),
        _known("POST", CATEGORY_FLAVORS, {"admin": 201}, slug="cache", body={"flavor": "m1.large"}),
        _known("DELETE", CATEGORY_FLAVORS, {"admin": 200}, slug="cache", query={"flavor": "m1.large"}),
        _known("POST", "/api/v1/categories/", {"admin": 201}, body={"slug": "vpn", "name": "VPN gateway"}),
        _known("DELETE", CATEGORY, {"admin": 204}, slug="vpn"),
        _known("POST", "/api/v1/flavors/", {"admin": 201, "alice": 403}, body=huge),
        *(_known("GET", CATEGORY, {"admin": 200}, slug=slug) for slug in world.demo.categories),
        *(_known("GET", CATEGORY_FLAVORS, slug=slug) for slug in world.demo.categories),
        *(_known("GET", "/api/v1/images/", query={"category": slug}) for slug in world.demo.categories),
        *(_known("GET", "/api/v1/volumes/", query={"category": slug}) for slug in world.demo.categories),
        *(
            _known("GET", f"/api/v1/{name}/", {"admin": 200, None: 401})
            for name in ("categories", "flavors", "images", "volumes", "projects")
        ),
        _known("GET", "/api/v1/flavors/{id}/", {"admin": 200}, pk=world.demo.flavors["m1.small"].pk),
        _known("GET", "/api/v1/flavors/{id}/", {"admin": 404}, pk="0.5"),  # no route: still JSON
        _known("GET", "/api/v1/images/{id}/", {"admin": 200}, pk=str(world.demo.images["debian-12"].pk)),
        _known("GET", "/api/v1/projects/{slug}/", {"admin": 200, "bob": 404}, slug="acme"),
        _known("GET", "/api/v1/me/", {"alice": 200, None: 401}),
        _known("POST", "/api/v1/auth/token/", {"alice": 200}, body={"username": "alice", "password": DEMO_PASSWORD}),
        _known("POST", "/api/v1/auth/token/", {"alice": 400}, body={"username": "alice", "password": "wrong"}),
    ]


@pytest.mark.parametrize("role", ROLES, ids=lambda role: role or "anonymous")
def test_known_answers_are_documented(role, world):
    for case, expected in _known_cases(world):
        response = _call_as(role, world.headers[role], case)
        if role in expected:
            assert response.status_code == expected[role], (case.method, case.formatted_path, response.text[:300])
        if case.method == "POST" and case.path == "/api/v1/instances/" and response.status_code == 202:
            assert len(response.json().get("instances", [None])) == case.body.get("count", 1)
