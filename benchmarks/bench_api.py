"""Benchmarks: list and launch latency, SQL queries per list, reconcile time.

Run with ``make bench``. Uses a throw-away PostgreSQL database
(``adminvms_bench``, or BENCH_DATABASE_URL) and the Redis broker on a queue
nobody consumes (purged at the end). Prints one table; compare rows measured in
the same run, the machine is noisy.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault(
    "DATABASE_URL", os.environ.get("BENCH_DATABASE_URL", "postgres://postgres:postgres@127.0.0.1:5432/adminvms_bench")
)
os.environ.setdefault("ADMINVMS_QUEUE", f"adminvms-bench-{uuid.uuid4().hex[:8]}")
os.environ["ADMINVMS_CELERY_EAGER"] = "0"
os.environ["DJANGO_SETTINGS_MODULE"] = "adminvms_dashboard.settings_test"

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import setup_databases, teardown_databases  # noqa: E402

from adminvms_dashboard.celery import app as celery_app  # noqa: E402

ROWS: list[tuple[str, str, str]] = []


class QueryCounter:
    """Counts every SQL statement run on the default connection inside the block."""

    def __init__(self):
        self.count = 0

    def __call__(self, execute, sql, params, many, context):
        self.count += 1
        return execute(sql, params, many, context)

    def __enter__(self):
        self._cm = connection.execute_wrapper(self)
        self._cm.__enter__()
        return self

    def __exit__(self, *exc):
        self._cm.__exit__(*exc)

    def __len__(self):
        return self.count


def timed(fn, repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def report(name: str, samples: list[float], extra: str = "") -> None:
    ROWS.append((name, f"{statistics.median(samples):8.1f} ms", extra))


def main() -> None:
    from django.contrib.auth import get_user_model

    from categories.models import InstanceCategory
    from instances import services
    from instances.drivers.sim.models import SimServer
    from instances.models import Instance
    from tenancy.models import Project

    settings.ADMINVMS = {**settings.ADMINVMS, "DEMO_PASSWORD": "bench"}
    call_command("seed_demo", quiet=True)
    admin = get_user_model().objects.get(username="admin")
    alice = get_user_model().objects.get(username="alice")
    acme = Project.objects.get(slug="acme")
    standard = InstanceCategory.objects.get(slug="standard")
    client = Client()
    client.force_login(admin)

    created = 0
    for size in (5, 50, 500):
        Instance.objects.bulk_create(
            [
                Instance(
                    name=f"b{created + n}",
                    category=standard,
                    project=acme,
                    status="ACTIVE",
                    backend="sim",
                    backend_id=str(uuid.uuid4()),
                )
                for n in range(size - created)
            ]
        )
        created = size
        url = f"/api/v1/instances/?page_size={size}"
        client.get(url)
        with QueryCounter() as queries:
            assert client.get(url).status_code == 200
        report(
            f"list {size} instances (admin)", timed(lambda url=url: client.get(url), 15), f"{len(queries)} SQL queries"
        )

    member = Client()
    member.force_login(alice)
    report("list 500 instances (member)", timed(lambda: member.get("/api/v1/instances/?page_size=500"), 15))

    vsa_free = InstanceCategory.objects.get(slug="vsa")
    vsa_free.max_instances = None
    vsa_free.save()
    launches = timed(
        lambda: member.post("/api/v1/instances/", {"name": "l", "category": "vsa"}, content_type="application/json"), 30
    )
    report(
        "launch request (202, task enqueued on Redis)",
        launches,
        f"p95 {sorted(launches)[int(len(launches) * 0.95) - 1]:.1f} ms",
    )

    # Reconcile over 500 instances whose servers exist in the sim cloud.
    rows = list(Instance.objects.filter(backend="sim").exclude(backend_id=""))
    SimServer.objects.bulk_create(
        [
            SimServer(
                id=r.backend_id,
                instance_uuid=r.pk,
                name=r.name,
                kind="vm",
                project_ref="acme",
                category_ref="standard",
                status="ACTIVE",
            )
            for r in rows
        ]
    )
    with QueryCounter() as queries:
        services.instances_reconcile(backends=["sim"])
    report(
        f"reconcile {len(rows)} instances (sim)",
        timed(lambda: services.instances_reconcile(backends=["sim"]), 5),
        f"{len(queries)} SQL queries",
    )

    with celery_app.connection_for_write() as conn:
        conn.default_channel.queue_purge(settings.CELERY_TASK_DEFAULT_QUEUE)


if __name__ == "__main__":
    old = setup_databases(verbosity=0, interactive=False)
    try:
        main()
    finally:
        teardown_databases(old, verbosity=0)
    width = max(len(r[0]) for r in ROWS)
    print(f"\n{'benchmark':<{width}}  {'median':>11}  notes")
    print(f"{'-' * width}  {'-' * 11}  {'-' * 24}")
    for name, value, extra in ROWS:
        print(f"{name:<{width}}  {value:>11}  {extra}")
