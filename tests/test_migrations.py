"""Schema migrations with data (issue 12), on PostgreSQL.

Every app migrates back to zero and forward to the latest, and the database it leaves is the one
the models describe. A database at an older state, with rows in it, migrates forward without
losing a row, a field or an event (DESIGN.md rule 6: events are never deleted).

The ``migrator`` fixture of django-test-migrations gives each test a transactional database,
mutes the migrate signals while it migrates, and migrates to the latest again afterwards, so
the tests that run later find the schema they expect.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

from django.apps import apps as current_apps
from django.db import connection
from django.db.migrations.autodetector import MigrationAutodetector
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.state import ProjectState

from instances.drivers.sim.models import SimServer
from instances.models import Instance, InstanceEvent

OUR_APPS = ("tenancy", "categories", "instances", "sim")

# Our apps before the EC2 API (tenancy 0002, instances 0004), the GUI origin (instances 0003),
# SimServer's move to the sim app (instances 0002, sim 0001), the rule that provider categories grant
# nothing (categories 0003), Image.project (categories 0004) and every migration since; every other
# app at its latest.
OLD = {"tenancy": "0001_initial", "categories": "0002_builtin_standard", "instances": "0001_initial", "sim": None}

# What the moves between apps renamed: the rows are the same.
MOVED = {"instances.simserver": "sim.simserver"}

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)

# Column and nullability of a table, as PostgreSQL spells the types.
COLUMNS_SQL = """
    SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull
    FROM pg_attribute a
    JOIN pg_class c ON c.oid = a.attrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relname = %s AND n.nspname = current_schema() AND a.attnum > 0 AND NOT a.attisdropped
"""


def leaf_nodes() -> list[tuple[str, str]]:
    """The latest migration of every app, read from the files each time (as ``migrate`` does)."""
    return sorted(MigrationLoader(None, ignore_no_migrations=True).graph.leaf_nodes())


def migrate_to_zero(migrator) -> None:
    """Unapply every migration of every app, running each one backwards."""
    migrator.apply_tested_migration([(app, None) for app, _ in leaf_nodes()])


def pending_model_changes(state: ProjectState) -> dict:
    """What ``makemigrations --check`` would find between ``state`` and the models."""
    autodetector = MigrationAutodetector(state, ProjectState.from_apps(current_apps))
    return autodetector.changes(graph=MigrationLoader(None, ignore_no_migrations=True).graph)


def schema_differences() -> list[str]:
    """Where the database's tables, columns, keys and indexes differ from what the models say."""
    models = [m for m in current_apps.get_models(include_auto_created=True) if m._meta.managed and not m._meta.proxy]
    tables = set(connection.introspection.table_names())
    leftovers = tables - {m._meta.db_table for m in models} - {"django_migrations"}
    differences = [f"{table}: a table no model has" for table in sorted(leftovers)]
    with connection.cursor() as cursor:
        for model in models:
            if model._meta.db_table in tables:
                differences += table_differences(cursor, model._meta)
            else:
                differences.append(f"{model._meta.label}: no table {model._meta.db_table}")
    return differences


def table_differences(cursor, meta) -> list[str]:
    differences = []
    cursor.execute(COLUMNS_SQL, [meta.db_table])
    columns = {name: (sql_type, not_null) for name, sql_type, not_null in cursor.fetchall()}
    wanted = {
        f.column: (f.db_type(connection).replace("varchar", "character varying"), not f.null)
        for f in meta.local_concrete_fields
    }
    if meta.auto_created and columns.get(meta.pk.column) == ("bigint", True):
        # Migrations build an app's implicit many-to-many tables from historical models, which take
        # DEFAULT_AUTO_FIELD, not the app's own default_auto_field: auth's three get a bigint id where
        # auth's models say integer. Django does that on every database; it is not ours to fix.
        wanted[meta.pk.column] = ("bigint", True)
    if columns != wanted:
        differences.append(f"{meta.db_table}: columns {columns} instead of {wanted}")

    constraints = connection.introspection.get_constraints(cursor, meta.db_table)
    for name in [index.name for index in meta.indexes] + [constraint.name for constraint in meta.constraints]:
        if name not in constraints:
            differences.append(f"{meta.db_table}: no index or constraint {name}")
    for field in meta.local_concrete_fields:
        on_column = [c for c in constraints.values() if c["columns"] == [field.column]]
        if field.remote_field and field.db_constraint:
            target = (field.target_field.model._meta.db_table, field.target_field.column)
            if not any(c["foreign_key"] == target for c in on_column):
                differences.append(f"{meta.db_table}.{field.column}: no foreign key to {target}")
        if field.unique and not any(c["unique"] for c in on_column):
            differences.append(f"{meta.db_table}.{field.column}: not unique")
        if field.db_index and not field.unique and not any(c["index"] for c in on_column):
            differences.append(f"{meta.db_table}.{field.column}: no index")
    for together in meta.unique_together:
        together_columns = [meta.get_field(name).column for name in together]
        if not any(c["unique"] and c["columns"] == together_columns for c in constraints.values()):
            differences.append(f"{meta.db_table}: {together_columns} not unique together")
    return differences


def snapshot(state_apps) -> dict[str, dict]:
    """Every row of our apps' tables (many-to-many ones too): ``{model label: {pk: {field: value}}}``."""
    rows = {}
    for model in state_apps.get_models(include_auto_created=True):
        if model._meta.app_label in OUR_APPS:
            pk = model._meta.pk.attname
            rows[model._meta.label_lower] = {row[pk]: row for row in model._default_manager.values()}
    return rows


def test_every_app_migrates_from_zero_to_the_latest_on_postgresql(migrator):
    assert connection.vendor == "postgresql"

    migrate_to_zero(migrator)
    assert set(connection.introspection.table_names()) == {"django_migrations"}

    state = migrator.apply_tested_migration(leaf_nodes())

    assert pending_model_changes(state) == {}
    assert schema_differences() == []


def test_rows_and_events_of_an_older_state_survive_every_migration_since(migrator):
    migrate_to_zero(migrator)
    old = migrator.apply_tested_migration([(app, OLD.get(app, name)) for app, name in leaf_nodes()])
    assert ("instances", "simserver") in old.models
    assert ("sim", "simserver") not in old.models
    assert ("instances", "launchrequest") not in old.models
    assert ("tenancy", "ec2credential") not in old.models

    model = old.apps.get_model
    User = model("auth", "User")
    Project, Membership = model("tenancy", "Project"), model("tenancy", "Membership")
    Category, Flavor = model("categories", "InstanceCategory"), model("categories", "Flavor")
    Image, Volume = model("categories", "Image"), model("categories", "Volume")
    OldInstance, Action = model("instances", "Instance"), model("instances", "InstanceAction")
    Event = model("instances", "InstanceEvent")
    OldSimServer, ReconcileRun = model("instances", "SimServer"), model("instances", "ReconcileRun")

    alice, rita, bob = (User.objects.create(username=name, password="!") for name in ("alice", "rita", "bob"))
    acme = Project.objects.create(slug="acme", name="ACME", keystone_id="k-acme")
    globex = Project.objects.create(slug="globex", name="Globex", description="the other one")
    Membership.objects.create(user=alice, project=acme, role="member")
    Membership.objects.create(user=rita, project=acme, role="reader")
    Membership.objects.create(user=bob, project=globex, role="member")

    small = Flavor.objects.create(name="m1.small", vcpus=1, ram_mb=2048, disk_gb=20, backend_id="2")
    large = Flavor.objects.create(name="m1.large", vcpus=4, ram_mb=8192, disk_gb=80, backend_id="4")
    standard = Category.objects.get(slug="standard")  # made by categories 0002
    standard.allowed_flavors.add(small, large)
    lb = Category.objects.create(
        slug="lb", name="Load balancer", management="provider", user_operations=["reboot", "stop"],
        user_visible=False, network_placement="both", anti_affinity="anti-affinity", default_flavor=small,
    )  # fmt: skip
    vsa = Category.objects.create(
        slug="vsa", name="Storage appliance", management="appliance", user_operations=["reboot"], gui_port=8443,
        extra_metadata={"role": "vsa"}, max_instances=2,
    )  # fmt: skip
    vsa.allowed_flavors.add(large)
    ubuntu = Image.objects.create(name="ubuntu-24.04", backend_id="glance-1", tags=["linux"], min_disk_gb=10)
    ubuntu.categories.add(standard)
    haproxy = Image.objects.create(name="haproxy", backend_id="glance-2", tags=["lb"])
    haproxy.categories.add(lb)
    Volume.objects.create(name="data", size_gb=100, project=acme).categories.add(vsa)

    def launch(name, *, project, category, status, user, flavor=small, image=ubuntu, **fields):
        return OldInstance.objects.create(
            name=name, project=project, category=category, flavor=flavor, image=image, status=status,
            backend="sim", backend_id=f"sim-{name}", created_by=user, **fields,
        )  # fmt: skip

    web = launch(
        "web-1", project=acme, category=standard, status="ACTIVE", user=alice, launched_at=T0,
        addresses={"acme-net": ["10.0.0.5"]}, metadata={"owner": "alice"}, host="node-1",
    )  # fmt: skip
    db = launch("db-1", project=acme, category=standard, status="STOPPED", user=alice, flavor=large, launched_at=T0)
    broken = launch("broken", project=acme, category=vsa, status="ERROR", user=alice, fault="No valid host was found.")
    gone = launch(
        "old-lb", project=globex, category=lb, status="DELETED", user=bob, image=haproxy,
        launched_at=T0, deleted_at=T0 + timedelta(days=3),
    )  # fmt: skip
    booting = launch("booting", project=globex, category=standard, status="BUILDING", user=bob, task_state="spawning")

    def act(instance, action, status, user, **fields):
        return Action.objects.create(
            instance=instance, action=action, status=status, requested_by=user, deadline=T0 + timedelta(hours=1),
            **fields,
        )  # fmt: skip

    actions = {
        "web launch": act(web, "launch", "succeeded", alice, backend_called=True, attempts=1, finished_at=T0),
        "web reboot": act(web, "reboot", "running", alice, backend_called=True, started_at=T0),
        "db launch": act(db, "launch", "succeeded", alice, backend_called=True, attempts=1),
        "db stop": act(db, "stop", "succeeded", None, params={"force": True}),
        "broken launch": act(broken, "launch", "failed", alice, attempts=3, message="No valid host was found."),
        "lb launch": act(gone, "launch", "succeeded", bob, backend_called=True),
        "lb terminate": act(gone, "terminate", "succeeded", bob, backend_called=True),
        "booting launch": act(booting, "launch", "pending", bob),
    }
    for label, action in actions.items():
        instance = action.instance
        Event.objects.create(instance=instance, action=action, event=f"{action.action}.requested", message=label)
        if action.status in {"succeeded", "failed"}:
            result = "success" if action.status == "succeeded" else "error"
            Event.objects.create(instance=instance, action=action, event=f"{action.action}.end", result=result)
    Event.objects.create(instance=gone, event="instance.vanished", result="error", message="gone from the cloud")
    Event.objects.create(instance=web, event="adopted", message="adopted into category standard")

    for instance, status in ((web, "ACTIVE"), (db, "SHUTOFF"), (booting, "BUILD")):
        OldSimServer.objects.create(
            instance_uuid=instance.pk, name=instance.name, kind="vm", project_ref=str(instance.project_id),
            category_ref=str(instance.category_id), flavor={"vcpus": 1}, metadata={"adminvms": str(instance.pk)},
            status=status, addresses=instance.addresses,
        )  # fmt: skip
    ReconcileRun.objects.create(backend="sim", checked=5, updated=1, vanished=[str(gone.pk)])

    before = snapshot(old.apps)
    assert len(before["instances.instanceevent"]) == 16
    assert all(before.values()), "every table of the old state has rows"

    new = migrator.apply_tested_migration(leaf_nodes())
    after = snapshot(new.apps)

    # categories 0003 is meant to change one thing: a provider category grants members nothing.
    expected = copy.deepcopy(before)
    expected["categories.instancecategory"][lb.pk]["user_operations"] = []
    for label, rows in expected.items():
        kept = after[MOVED.get(label, label)]
        assert kept.keys() == rows.keys(), label
        for pk, row in rows.items():
            assert {name: kept[pk][name] for name in row} == row, (label, pk)
    # New fields take their defaults; new tables start empty.
    assert all(row["tags"] == {} and row["launch_request_id"] is None for row in after["instances.instance"].values())
    assert all(row["project_id"] is None for row in after["categories.image"].values())
    new_tables = ["instances.launchrequest", "instances.guiticket", "instances.guirequestslot", "tenancy.ec2credential"]
    assert [label for label in new_tables if after[label]] == []

    # The current models read the rows: the audit trail of a deleted instance, the sim app's servers.
    assert Instance.objects.count() == 5
    old_lb = Instance.objects.get(pk=gone.pk)
    assert (old_lb.status, old_lb.deleted_at) == ("DELETED", T0 + timedelta(days=3))
    assert (old_lb.tags, old_lb.launch_request) == ({}, None)
    assert list(old_lb.events.values_list("event", "result")) == [
        ("launch.requested", "info"), ("launch.end", "success"), ("terminate.requested", "info"),
        ("terminate.end", "success"), ("instance.vanished", "error"),
    ]  # fmt: skip
    assert InstanceEvent.objects.filter(action__status="failed").get(result="error").instance.fault == (
        "No valid host was found."
    )
    assert Instance.objects.get(pk=web.pk).addresses == {"acme-net": ["10.0.0.5"]}
    assert sorted(SimServer.objects.values_list("name", "status")) == [
        ("booting", "BUILD"), ("db-1", "SHUTOFF"), ("web-1", "ACTIVE"),
    ]  # fmt: skip
    assert schema_differences() == []
