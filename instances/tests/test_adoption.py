"""Adoption on the simulated cloud: rules, the dry run, apply, idempotence, ambiguity, trust, policy afterwards."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command

from categories.models import AdoptionRule
from instances import services
from instances.choices import Status
from instances.drivers.base import BackendUnavailable
from instances.drivers.sim.models import SimServer
from instances.models import Instance
from tenancy.errors import Forbidden, InvalidInput
from tests.factories import CategoryFactory


def legacy(name: str, *, project: str = "service", metadata=None, image: str = "vpn-image", kind="vm", **extra):
    """A server the simulated cloud runs that adminvms did not make (no stamp)."""
    fields = {"status": "ACTIVE", "host": "sim-host-1", "addresses": {"project": ["10.0.0.9"]}, **extra}
    return SimServer.objects.create(
        instance_uuid=None, name=name, kind=kind, project_ref=project, category_ref="", image_ref=image,
        flavor={"name": "m1.small"}, metadata=metadata or {}, **fields,
    )  # fmt: skip


@pytest.fixture
def vpn(demo):
    return CategoryFactory(slug="vpn", management="provider", kind="vm", user_visible=True, user_operations=[])


def by_name(plan):
    return {c.server.name: c for c in plan}


def test_the_dry_run_matches_by_rule_and_explains_the_rest(demo, vpn):
    legacy("acme-vpn", metadata={"adminvms-project": "acme"})
    legacy("globex-vpn", metadata={"adminvms-project": "nope"})
    legacy("db-1", metadata={"adminvms-project": "acme"})
    plan = by_name(services.adoption_plan(backend="sim", rules=services.rules_named("vpn")))
    assert (plan["acme-vpn"].verdict, plan["acme-vpn"].category, plan["acme-vpn"].project) == ("adopt", vpn, demo.acme)
    assert plan["acme-vpn"].rule == "vpn-sim"
    assert plan["globex-vpn"].verdict == "unmatched" and "names no project here ('nope')" in plan["globex-vpn"].why
    assert plan["db-1"].verdict == "unmatched" and "needs a name like *-vpn" in plan["db-1"].why
    assert "is for backend openstack" in plan["db-1"].why
    assert not Instance.objects.exists()  # a dry run writes nothing
    assert SimServer.objects.filter(instance_uuid__isnull=False).count() == 0


def test_apply_adopts_with_what_the_backend_reported_stamps_locks_and_is_idempotent(demo, vpn):
    server = legacy("acme-vpn", metadata={"adminvms-project": "acme", "owner": "netops"})
    plan = services.adoption_apply(backend="sim", rules=services.rules_named("vpn"))
    [adopted] = [c for c in plan if c.verdict == "adopted"]
    instance = Instance.objects.get()
    assert adopted.instance == instance
    assert (instance.name, instance.category, instance.project, instance.status) == ("acme-vpn", vpn, demo.acme,
                                                                                   Status.ACTIVE)  # fmt: skip
    assert (instance.backend, instance.backend_id, instance.host) == ("sim", str(server.pk), "sim-host-1")
    assert instance.addresses == {"project": ["10.0.0.9"]} and instance.flavor == demo.flavors["m1.small"]
    assert instance.created_at == server.created_at and instance.task_state == ""
    [event] = instance.events.all()
    assert event.event == "adopted" and "rule vpn-sim" in event.message
    server.refresh_from_db()
    assert str(server.instance_uuid) == str(instance.pk) and server.locked  # stamped and locked, as a create does
    assert server.metadata["owner"] == "netops"

    # A second run adopts nothing new.
    assert services.adoption_plan(backend="sim", rules=services.rules_named("vpn")) == []
    services.adoption_apply(backend="sim", rules=services.rules_named("vpn"))
    assert Instance.objects.count() == 1
    # Reconcile agrees with the adopted row.
    services.instances_reconcile()
    instance.refresh_from_db()
    assert instance.status == Status.ACTIVE and instance.events.count() == 1


def test_an_adopted_provider_instance_obeys_the_policy(demo, vpn, api):
    legacy("acme-vpn", metadata={"adminvms-project": "acme"})
    services.adoption_apply(backend="sim", rules=services.rules_named("vpn"))
    instance = Instance.objects.get()
    answer = api(demo.alice).delete(f"/api/v1/instances/{instance.pk}/?category=vpn")
    assert answer.status_code == 403
    assert api(demo.bob).get(f"/api/v1/instances/{instance.pk}/").status_code == 404
    shown = api(demo.alice).get(f"/api/v1/instances/{instance.pk}/").json()
    assert shown["restricted"] and "backend_id" not in shown and "metadata" not in shown
    assert api(demo.admin).delete(f"/api/v1/instances/{instance.pk}/").status_code == 202


def test_equal_priorities_for_different_categories_are_ambiguous_and_left_alone(demo, vpn):
    other = CategoryFactory(slug="gateway", management="provider", kind="vm")
    legacy("edge-vpn", metadata={"role": "edge"})
    rules = services.rules_from([
        {"name": "by-name", "category": "vpn", "priority": 5, "name_pattern": "*-vpn", "project": "acme"},
        {"name": "by-role", "category": "gateway", "priority": 5, "metadata_key": "role", "project": "acme"},
    ])  # fmt: skip
    [candidate] = services.adoption_apply(backend="sim", rules=rules)
    assert candidate.verdict == "ambiguous" and "by-name, by-role" in candidate.why
    assert not Instance.objects.exists()
    # A higher priority settles it.
    rules = services.rules_from([
        {"name": "by-name", "category": "vpn", "priority": 5, "name_pattern": "*-vpn", "project": "acme"},
        {"name": "by-role", "category": "gateway", "priority": 6, "metadata_key": "role", "project": "acme"},
    ])  # fmt: skip
    [candidate] = services.adoption_apply(backend="sim", rules=rules)
    assert candidate.verdict == "adopted" and candidate.category == other


def test_a_tenants_own_server_named_like_a_vpn_is_never_made_provider_managed(demo, vpn):
    """Rule 9: a name and metadata a tenant wrote do not make her server the provider's."""
    legacy("sneaky-vpn", project="acme", metadata={"adminvms-project": "globex"})
    [candidate] = services.adoption_apply(backend="sim", rules=services.rules_named("vpn"))
    assert candidate.verdict == "unmatched"
    assert "takes no server of a tenant's own project into a managed category" in candidate.why
    assert not Instance.objects.exists()
    # Such a rule needs a criterion the tenant cannot forge.
    with pytest.raises(InvalidInput, match="needs a flavor or image"):
        services.rules_from([{"category": "vpn", "name_pattern": "*-vpn", "tenant_servers": True}])
    # With one, her server is adopted and stays in her project.
    rules = services.rules_from([{"category": "vpn", "image": "vpn-image", "flavor": "m1.small",
                                  "tenant_servers": True}])  # fmt: skip
    [candidate] = services.adoption_apply(backend="sim", rules=rules)
    assert candidate.verdict == "adopted" and candidate.project == demo.acme
    assert "stays" in candidate.instance.events.get().message


def test_a_server_gone_or_busy_is_reported_not_half_adopted(demo, vpn):
    building = legacy("new-vpn", metadata={"adminvms-project": "acme"}, status="BUILD")
    gone = legacy("old-vpn", metadata={"adminvms-project": "acme"})
    rules = services.rules_named("vpn")
    plan = by_name(services.adoption_plan(backend="sim", rules=rules))
    assert plan["new-vpn"].verdict == "busy" and plan["old-vpn"].verdict == "adopt"
    # Gone between the preview and the apply: the apply's own listing no longer has it.
    SimServer.objects.filter(pk=gone.pk).delete()
    plan = by_name(services.adoption_apply(backend="sim", rules=rules))
    assert "old-vpn" not in plan and plan["new-vpn"].verdict == "busy"
    assert not Instance.objects.exists()
    building.refresh_from_db()
    assert building.instance_uuid is None


def test_servers_gone_or_adopted_since_the_preview_are_reported_and_an_outage_writes_nothing(demo, vpn, settings):
    first = legacy("a-vpn", metadata={"adminvms-project": "acme"})
    second = legacy("b-vpn", metadata={"adminvms-project": "acme"})
    rules = services.rules_named("vpn")
    preview = {c.server.backend_id for c in services.adoption_plan(backend="sim", rules=rules)}
    SimServer.objects.filter(pk=first.pk).delete()
    SimServer.objects.filter(pk=second.pk).update(instance_uuid="6a4c0d5e-0000-4000-8000-000000000000")
    plan = services.adoption_apply(backend="sim", rules=rules, only=preview)
    assert {c.verdict for c in plan} == {"gone"} and len(plan) == 2
    assert not Instance.objects.exists()

    legacy("c-vpn", metadata={"adminvms-project": "acme"})
    settings.ADMINVMS = {**settings.ADMINVMS, "SIM_OUTAGE": True}
    with pytest.raises(BackendUnavailable):
        services.adoption_apply(backend="sim", rules=rules)
    assert not Instance.objects.exists()


def test_only_provider_admins_adopt(demo, vpn):
    with pytest.raises(Forbidden):
        services.adoption_apply(user=demo.alice, backend="sim", rules=services.rules_named("vpn"))


def test_rules_are_checked_and_saved_rules_are_the_default(demo, vpn, tmp_path):
    with pytest.raises(InvalidInput, match="no category 'nope'"):
        services.rules_from([{"category": "nope", "name_pattern": "*"}])
    with pytest.raises(InvalidInput, match="unknown field"):
        services.rules_from([{"category": "vpn", "nmae_pattern": "*"}])
    with pytest.raises(InvalidInput, match="at least one criterion"):
        services.rules_from([{"category": "vpn"}])
    with pytest.raises(InvalidInput, match="No built-in rule set"):
        services.rules_named("nope")

    legacy("acme-vpn", metadata={"adminvms-project": "acme"})
    AdoptionRule.objects.create(name="saved", category=vpn, name_pattern="*-vpn", project_key="adminvms-project")
    out = io.StringIO()
    call_command("adopt_instances", "--backend", "sim", stdout=out)
    assert "acme-vpn" in out.getvalue() and "adopt" in out.getvalue() and "saved" in out.getvalue()
    assert not Instance.objects.exists()

    path = tmp_path / "rules.json"
    path.write_text(json.dumps([{"name": "from-file", "category": "vpn", "name_pattern": "*-vpn",
                                 "project": "acme"}]))  # fmt: skip
    out = io.StringIO()
    call_command("adopt_instances", "--backend", "sim", "--rules", str(path), "--apply", stdout=out)
    assert "adopted" in out.getvalue() and "from-file" in out.getvalue()
    assert Instance.objects.get().project == demo.acme
    path.write_text("[{")
    with pytest.raises(CommandError, match="not a JSON list"):
        call_command("adopt_instances", "--backend", "sim", "--rules", str(path), stdout=io.StringIO())


def test_the_console_page_previews_then_adopts_the_ticked_servers(demo, vpn, web):
    keep = legacy("acme-vpn", metadata={"adminvms-project": "acme"})
    legacy("globex-vpn", metadata={"adminvms-project": "globex"})
    admin = web(demo.admin)
    page = admin.get("/console/adoption/?backend=sim&rules=vpn")
    assert page.status_code == 200
    body = page.content.decode()
    assert 'data-server="acme-vpn"' in body and 'data-server="globex-vpn"' in body
    assert not Instance.objects.exists()
    done = admin.post("/console/adoption/", {"backend": "sim", "rules": "vpn", "server": [str(keep.pk)]})
    assert done.status_code == 200
    assert [i.name for i in Instance.objects.all()] == ["acme-vpn"]
    assert "Adopted 1 server(s)" in done.content.decode()
    # Members and readers never reach it; bad input is a message, not a 500.
    assert web(demo.alice).get("/console/adoption/").status_code == 403
    assert web(demo.alice).post("/console/adoption/", {"backend": "sim"}).status_code == 403
    assert admin.get("/console/adoption/?backend=nope").status_code == 200
    assert "No built-in rule set" in admin.get("/console/adoption/?backend=sim&rules=nope").content.decode()
    assert Instance.objects.count() == 1
