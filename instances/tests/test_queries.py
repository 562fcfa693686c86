"""Listings cost a fixed number of SQL queries, whatever the number of rows (no N+1)."""

from __future__ import annotations

import itertools

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext

from instances.models import Instance

INSTANCES = "/api/v1/instances/"


def _add(demo, n: int, categories: list[str]) -> None:
    """``n`` instances spread over ``categories`` and both projects, with flavor, image and a creator."""
    spread = itertools.cycle(itertools.product(categories, [demo.acme, demo.globex]))
    images = {c.pk: c.images.first() for c in demo.categories.values()}
    rows = []
    for i, (slug, project) in zip(range(n), spread, strict=False):
        category = demo.categories[slug]
        rows.append(
            Instance(
                name=f"bulk-{i}",
                category=category,
                project=project,
                flavor=category.default_flavor,
                image=images[category.pk],
                status="ACTIVE",
                backend="sim",
                backend_id=f"server-{i}",
                host="sim-host-1",
                addresses={"project": ["10.0.0.5"], "management": ["172.16.0.5"]},
                management_endpoint="172.16.0.5:8080",
                created_by=demo.alice,
            )
        )
    Instance.objects.bulk_create(rows)


def _list_queries(api, username, params) -> tuple[int, int]:
    """(number of SQL queries, number of results) of one listing request."""
    # A fresh user object, as each real request loads one (the policy caches roles on it).
    client = api(get_user_model().objects.get(username=username))
    with CaptureQueriesContext(connection) as queries:
        response = client.get(INSTANCES, {**params, "page_size": 1000})
    assert response.status_code == 200, response.json()
    return len(queries), len(response.json()["results"])


@pytest.mark.parametrize(
    ("username", "params", "categories"),
    [
        ("admin", {"category": "all"}, ["standard", "vsa", "lb", "cache"]),
        ("admin", {}, ["standard"]),
        ("alice", {}, ["standard"]),
        ("alice", {"category": "vsa"}, ["vsa"]),  # the restricted view
        ("alice", {"category": "lb"}, ["lb"]),
    ],
)
def test_listing_500_costs_the_same_queries_as_listing_5(demo, api, username, params, categories):
    share = 1 if username == "admin" else 2  # members see acme's half; the other half is globex's

    _add(demo, 5 * share, categories)
    few_queries, few = _list_queries(api, username, params)
    assert few == 5

    _add(demo, 495 * share, categories)
    many_queries, many = _list_queries(api, username, params)
    assert many == 500

    assert many_queries == few_queries
    # The user's roles, the category named, the count, the page's ids, their rows, and one query per
    # relation the rows show (category, project, flavor, image).
    assert few_queries <= 10


def test_events_listing_costs_the_same_queries_for_many_events(demo, api, run_tasks):
    def alice():
        return api(get_user_model().objects.get(username="alice"))

    with run_tasks():
        response = alice().post(INSTANCES, {"name": "web"}, format="json")
    url = f"{INSTANCES}{response.json()['id']}/events/"
    with CaptureQueriesContext(connection) as few:
        assert len(alice().get(url).json()["results"]) == 3
    instance = Instance.objects.get(pk=response.json()["id"])
    action = instance.actions.get()
    instance.events.model.objects.bulk_create(
        instance.events.model(instance=instance, action=action, event="note", message=str(i)) for i in range(40)
    )
    with CaptureQueriesContext(connection) as many:
        assert len(alice().get(url).json()["results"]) == 43
    assert len(many) == len(few)
