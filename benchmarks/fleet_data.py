"""A fleet for the benchmarks, written with PostgreSQL's COPY: 100,000 instances in seconds.

Every instance looks as if it had been launched through the service and settled: its sim server
(so that reconcile and health probes find the cloud agreeing), its launch action and the three
events a launch writes. Instances and sim servers go through ``COPY ... FROM STDIN`` (psycopg 3),
column by column from the model's own fields and defaults, so a new column with a default needs
no change here; actions and events are derived from them inside PostgreSQL (``INSERT ... SELECT``).
On the 2-core benchmark machine, 99,000 instances with their servers, actions and events take 15 to 20 s,
VACUUM ANALYZE included (instances and servers about 7 s of it).

Run as a module (``python -m benchmarks.fleet_data START STOP``) it grows the fleet of the database
``DATABASE_URL`` names from START to STOP instances, in a process of its own: the benchmark's
process, which also serves the web requests whose memory is measured, never holds the rows.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection
from django.db.models import JSONField, Model
from django.db.models.fields import AutoFieldMixin
from django.utils import timezone

# status → share of the fleet (per mille), by position in a repeating cycle of 1000: DELETED rows
# stay as history (rule 6), ERROR rows carry a fault.
STATUS_CYCLE = ["ACTIVE"] * 910 + ["STOPPED"] * 40 + ["ERROR"] * 20 + ["DELETED"] * 30
SIM_STATUS = {"ACTIVE": "ACTIVE", "STOPPED": "SHUTOFF", "ERROR": "ERROR"}
# One instance launched a minute, newest first: 100,000 span about 70 days.
SPACING = timedelta(minutes=1)
FAULT = "Simulated failure injected by the benchmark."


def copy_rows(model: type[Model], rows: Iterable[dict]) -> int:
    """COPY ``rows`` (attname → value) into ``model``'s table; a column a row does not name gets the
    field's default. Returns how many rows were written."""
    # Serial primary keys come from their sequence.
    fields = [f for f in model._meta.concrete_fields if not isinstance(f, AutoFieldMixin)]
    json_fields = {f.attname for f in fields if isinstance(f, JSONField)}
    defaults = {}
    for f in fields:
        if f.has_default() and not callable(f.default):
            defaults[f.attname] = f.get_default()
        elif f.null:
            defaults[f.attname] = None
        elif f.empty_strings_allowed and not f.has_default():
            defaults[f.attname] = ""
    for name in json_fields & defaults.keys():
        defaults[name] = json.dumps(defaults[name])
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    names = [f.attname for f in fields]
    n = 0
    with (
        connection.cursor() as cursor,
        cursor.cursor.copy(f"COPY {model._meta.db_table} ({columns}) FROM STDIN") as copy,
    ):
        for row in rows:
            for name in json_fields & row.keys():
                row[name] = json.dumps(row[name])
            try:
                copy.write_row([row[name] if name in row else defaults[name] for name in names])
            except KeyError as missing:
                raise ValueError(f"{model.__name__}: no value and no default for {missing}") from None
            n += 1
    return n


@dataclass
class Catalog:
    """What every instance points at: the demo's categories with their flavor and image, the projects, a user."""

    categories: list  # InstanceCategory, with default_flavor
    images: dict  # category pk → Image
    projects: list  # acme first: the member's project
    user: object

    @classmethod
    def load(cls) -> Catalog:
        from django.contrib.auth import get_user_model

        from categories.models import InstanceCategory
        from categories.selectors import category_default_image
        from tenancy.models import Project

        acme = Project.objects.get(slug="acme")
        categories = list(InstanceCategory.objects.select_related("default_flavor").order_by("slug"))
        return cls(
            categories=categories,
            images={c.pk: category_default_image(c) for c in categories},
            projects=[acme, *Project.objects.exclude(pk=acme.pk).order_by("slug")],
            user=get_user_model().objects.get(username="admin"),
        )


def _ip(first: int, n: int) -> str:
    n += 256
    return f"{first}.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


def _instances(catalog: Catalog, start: int, stop: int, now: datetime) -> Iterator[tuple[dict, dict | None]]:
    """(instance row, sim server row or None) for positions ``start`` to ``stop`` of the fleet:
    categories in turn, then projects in turn, so that every project holds every category."""
    cats, projects = catalog.categories, catalog.projects
    for n in range(start, stop):
        category = cats[n % len(cats)]
        project = projects[(n // len(cats)) % len(projects)]
        status = STATUS_CYCLE[(n * 7) % len(STATUS_CYCLE)]
        created = now - SPACING * (n + 1)
        launched = created + timedelta(seconds=20)
        pk, server = uuid.uuid4(), uuid.uuid4()
        addresses = {}
        if category.network_placement in ("project", "both"):
            addresses["project"] = [_ip(10, n)]
        if category.network_placement in ("management", "both"):
            addresses["management"] = [_ip(172, n)]
        endpoint = ""
        if category.gui_port and addresses:
            endpoint = f"{(addresses.get('management') or addresses['project'])[0]}:{category.gui_port}"
        image = catalog.images.get(category.pk)
        metadata = {
            **category.extra_metadata,
            "adminvms_instance": str(pk),
            "adminvms_category": category.slug,
            "adminvms_project": project.slug,
        }
        fault = FAULT if status == "ERROR" else ""
        checked = category.health_check_port is not None and status == "ACTIVE"
        host = f"sim-host-{n % 3 + 1}"
        gone = status == "DELETED"
        instance = {
            "id": pk,
            "name": f"{category.slug}-{n:06d}",
            "category_id": category.pk,
            "project_id": project.pk,
            "flavor_id": category.default_flavor_id,
            "image_id": image.pk if image else None,
            "status": status,
            "backend": "sim",
            "backend_id": "" if gone else str(server),
            "host": "" if gone else host,
            "availability_zone": category.availability_zone,
            "addresses": addresses,
            "management_endpoint": endpoint,
            "metadata": metadata,
            "tags": {"env": "prod" if n % 3 else "dev"},
            "fault": fault,
            "health": "healthy" if checked else "",
            "health_since": launched if checked else None,
            "health_checked_at": now if checked else None,
            "created_by_id": catalog.user.pk,
            "created_at": created,
            "updated_at": launched,
            "launched_at": launched,
            "deleted_at": launched + timedelta(hours=1) if gone else None,
        }
        sim = None
        if not gone:
            sim = {
                "id": server,
                "instance_uuid": pk,
                "name": instance["name"],
                "kind": category.kind,
                "project_ref": project.slug,
                "category_ref": category.slug,
                "image_ref": image.reference if image else "",
                "flavor": {},
                "host": host,
                "status": SIM_STATUS[status],
                "fault": fault,
                "addresses": addresses,
                "management_endpoint": endpoint,
                "locked": category.is_managed,
                "lock_reason": "Managed by the provider." if category.is_managed else "",
                "metadata": metadata,
                "created_at": created,
            }
        yield instance, sim


# A launch's action and its three events, for every instance written since %(since)s.
_ACTIONS = """
INSERT INTO instances_instanceaction (id, instance_id, action, status, requested_by_id, params, backend_called,
    rollout_id, attempts, message, created_at, started_at, finished_at, deadline)
SELECT gen_random_uuid(), i.id, 'launch', CASE WHEN i.status = 'ERROR' THEN 'failed' ELSE 'succeeded' END,
    i.created_by_id, '{}'::jsonb, true, NULL, 1, CASE WHEN i.status = 'ERROR' THEN i.fault ELSE '' END,
    i.created_at, i.created_at, i.launched_at, i.created_at + interval '10 minutes'
FROM instances_instance i WHERE i.id = ANY(%(ids)s)
"""
_EVENTS = """
INSERT INTO instances_instanceevent (instance_id, action_id, event, result, message, created_at)
SELECT a.instance_id, a.id, e.event, e.result, e.message, a.created_at + e.after
FROM instances_instanceaction a CROSS JOIN (VALUES
    ('requested', 'info', 'launch requested by admin', interval '0 seconds'),
    ('spawning', 'info', 'creating the server on backend ''sim''', interval '1 second'),
    ('finished', 'success', 'launch finished: ACTIVE', interval '20 seconds')
) AS e(event, result, message, after)
WHERE a.instance_id = ANY(%(ids)s)
"""


def populate(catalog: Catalog, start: int, stop: int) -> dict[str, int]:
    """Add fleet positions ``start`` to ``stop``: instances, their sim servers, launch actions and events."""
    from instances.drivers.sim.models import SimServer
    from instances.models import Instance

    now, ids, servers = timezone.now(), [], []

    def instances():
        for instance, sim in _instances(catalog, start, stop, now):
            ids.append(instance["id"])
            if sim is not None:
                servers.append(sim)
            yield instance

    counts = {"instances": copy_rows(Instance, instances())}
    counts["sim servers"] = copy_rows(SimServer, servers)
    with connection.cursor() as cursor:
        cursor.execute(_ACTIONS, {"ids": ids})
        counts["actions"] = cursor.rowcount
        cursor.execute(_EVENTS, {"ids": ids})
        counts["events"] = cursor.rowcount
    return counts


def analyze() -> None:
    """Statistics and visibility maps as a database that lived a while would have them."""
    from instances.drivers.sim.models import SimServer
    from instances.models import Instance, InstanceAction, InstanceEvent

    with connection.cursor() as cursor:
        for model in (Instance, SimServer, InstanceAction, InstanceEvent):
            cursor.execute(f"VACUUM ANALYZE {model._meta.db_table}")


if __name__ == "__main__":
    import django

    django.setup()
    began = time.perf_counter()
    written = populate(Catalog.load(), int(sys.argv[1]), int(sys.argv[2]))
    analyze()
    print(json.dumps({**written, "seconds": round(time.perf_counter() - began, 1)}))
