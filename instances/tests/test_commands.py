"""The reconcile management command."""

from __future__ import annotations

import io

from django.core.management import call_command

from instances.drivers.sim.models import SimServer


def test_reconcile_command_reports_vanished_and_orphans(demo, api, run_tasks):
    with run_tasks():
        body = api(demo.alice).post("/api/v1/instances/", {"name": "r"}, format="json").json()
    SimServer.objects.filter(instance_uuid=body["id"]).delete()
    orphan = SimServer.objects.create(
        instance_uuid="00000000-0000-0000-0000-000000000001", name="stray", kind="vm", project_ref="acme",
        category_ref="standard", status="ACTIVE",
    )  # fmt: skip
    out = io.StringIO()
    call_command("reconcile", stdout=out)
    assert "vanished 1, orphans 1" in out.getvalue()
    assert str(orphan.pk) in out.getvalue()
