"""Reconcile a page of servers at a time: the same drift as one listing, with calls and queries per page."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from instances import services
from instances.choices import Status
from instances.drivers.base import BackendUnavailable, ComputeDriver
from instances.drivers.registry import get_driver
from instances.drivers.sim.driver import SimDriver
from instances.drivers.sim.models import SimServer
from instances.models import Instance


@pytest.fixture
def fleet(demo, run_tasks):
    """Five launched instances of acme, their servers ACTIVE."""
    with run_tasks():
        instances = [services.instance_launch(user=demo.alice, name=f"vm-{n}")[0] for n in range(5)]
    return Instance.objects.filter(pk__in=[i.pk for i in instances]).order_by("name")


@pytest.fixture
def pages(monkeypatch):
    """The pages the sim driver listed, by reconcile pass: a list of page sizes per listing."""
    listings: list[list[int]] = []
    real = SimDriver.list_servers_pages

    def counted(self, page_size):
        listings.append([])
        for page in real(self, page_size):
            listings[-1].append(len(page))
            yield page

    monkeypatch.setattr(SimDriver, "list_servers_pages", counted)
    return listings


def _drift_everywhere(demo, fleet) -> dict:
    """A stopped server, a vanished one, one under an action, a stray server and a deleted row's server."""
    stopped, gone, busy, deleted, _same = fleet
    SimServer.objects.filter(instance_uuid=stopped.pk).update(status="SHUTOFF")
    SimServer.objects.filter(instance_uuid=gone.pk).delete()
    services.instance_act(user=demo.alice, instance=busy, operation="reboot")
    SimServer.objects.filter(instance_uuid=busy.pk).update(status="SHUTOFF")
    Instance.objects.filter(pk=deleted.pk).update(status=Status.DELETED)
    stray = SimServer.objects.create(
        instance_uuid=uuid.uuid4(), name="stray", kind="vm", project_ref="acme", category_ref="standard",
        status="ACTIVE",
    )  # fmt: skip
    return {"stopped": stopped, "gone": gone, "busy": busy, "deleted": deleted, "stray": stray}


def test_pages_of_two_find_the_drift_of_one_listing(demo, fleet, pages):
    cases = _drift_everywhere(demo, fleet)
    # The drift of one listing, compared without writing anything.
    rows = list(Instance.objects.filter(backend="sim").live())
    expected = services.drift_compare(backend="sim", rows=rows, servers=get_driver("sim").list_servers())

    [run] = services.instances_reconcile(backends=["sim"], page_size=2)

    assert run.error == ""
    assert (run.checked, run.updated) == (expected.checked, len(expected.changes)) == (4, 2)
    assert run.vanished == [str(cases["gone"].pk)]
    assert sorted(run.orphans, key=str) == sorted(expected.orphans, key=str)
    assert {o["backend_id"] for o in run.orphans} == {str(cases["stray"].pk), cases["deleted"].backend_id}
    statuses = dict(Instance.objects.values_list("name", "status"))
    assert [statuses[cases[k].name] for k in ("stopped", "gone", "busy")] == ["STOPPED", "ERROR", "REBOOTING"]
    assert pages == [[2, 2, 1]]  # five servers: four of ours left and the stray


def test_calls_and_queries_grow_with_pages(demo, fleet, pages):
    with CaptureQueriesContext(connection) as two:
        [run] = services.instances_reconcile(backends=["sim"], page_size=2)
    assert (run.checked, run.updated, run.orphans) == (5, 0, [])
    with CaptureQueriesContext(connection) as one:
        services.instances_reconcile(backends=["sim"], page_size=5)
    assert pages == [[2, 2, 1], [5]]  # one listing a pass, and its pages

    def selects(queries, table):
        return sum("SELECT" in q["sql"] and f'FROM "{table}" ' in q["sql"] for q in queries)

    # Rows: the backend ids once, then a read a page; servers: a keyset query a page (and the
    # empty one after a full last page).
    assert (selects(two, "instances_instance"), selects(two, "instances_simserver")) == (1 + 3, 3)
    assert (selects(one, "instances_instance"), selects(one, "instances_simserver")) == (1 + 1, 2)


def test_a_listing_that_fails_halfway_marks_nothing_vanished(demo, fleet, monkeypatch):
    first, *_ = fleet
    SimServer.objects.filter(instance_uuid=first.pk).update(status="SHUTOFF")
    real = SimDriver.list_servers_pages

    listed = []

    def breaks(self, page_size):
        pages = real(self, page_size)
        listed.extend(next(pages))
        yield listed
        raise BackendUnavailable("The simulated cloud stopped answering.")

    monkeypatch.setattr(SimDriver, "list_servers_pages", breaks)
    [run] = services.instances_reconcile(backends=["sim"], page_size=2)

    assert "stopped answering" in run.error
    assert run.vanished == []  # three servers were never listed: not vanished for that
    assert Instance.objects.filter(status=Status.ERROR).count() == 0
    # The page listed before is written: the stopped server's row where that page held it.
    first.refresh_from_db()
    stopped_listed = first.backend_id in {s.backend_id for s in listed}
    assert (run.updated, first.status) == ((1, "STOPPED") if stopped_listed else (0, "ACTIVE"))


def test_a_row_moved_to_another_server_during_the_listing_has_not_vanished(demo, fleet, monkeypatch):
    moved, *_ = fleet
    old = SimServer.objects.get(instance_uuid=moved.pk)
    real = SimDriver.list_servers_pages

    def heal_meanwhile(self, page_size):
        # After reconcile read the rows' backend ids: a heal replaces the server.
        new = SimServer.objects.create(
            instance_uuid=moved.pk, generation=1, name=moved.name, kind="vm", project_ref="acme",
            category_ref="standard", status="ACTIVE",
        )  # fmt: skip
        Instance.objects.filter(pk=moved.pk).update(backend_id=str(new.pk), generation=1)
        old.delete()
        yield from real(self, page_size)

    monkeypatch.setattr(SimDriver, "list_servers_pages", heal_meanwhile)
    [run] = services.instances_reconcile(backends=["sim"], page_size=2)

    assert (run.error, run.vanished, run.orphans) == ("", [], [])
    moved.refresh_from_db()
    assert moved.status == "ACTIVE"


def test_the_default_pages_slice_one_listing(demo, fleet):
    driver = get_driver("sim")
    listed = driver.list_servers()
    paged = list(ComputeDriver.list_servers_pages(driver, 2))
    assert [len(p) for p in paged] == [2, 2, 1]
    assert [s for page in paged for s in page] == listed
    assert sorted(s.backend_id for page in driver.list_servers_pages(2) for s in page) == sorted(
        s.backend_id for s in listed
    )
