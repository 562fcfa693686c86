"""The console overview's counts of the fleet: counted on each visit while the fleet is small, and by
the worker (the beat task ``counts``) for a large one, whose overview then reads the last count."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from ..models import FleetCounts, Instance


def fleet_counts() -> dict:
    """Live instances per category, status and backend, and the health verdicts of the health-checked
    categories ("unchecked": never probed), with the total: one GROUP BY over the fleet."""
    rows = (
        Instance.objects.live()
        .order_by()
        .values("category__slug", "category__name", "category__health_check_port", "status", "backend", "health")
        .annotate(n=Count("pk"))
    )
    by_category, by_status, by_backend, health, total = {}, {}, {}, {}, 0
    for r in rows:
        key = (r["category__slug"], r["category__name"])
        by_category[key] = by_category.get(key, 0) + r["n"]
        by_status[r["status"]] = by_status.get(r["status"], 0) + r["n"]
        by_backend[r["backend"]] = by_backend.get(r["backend"], 0) + r["n"]
        if r["category__health_check_port"] is not None:
            verdict = r["health"] or "unchecked"
            health[verdict] = health.get(verdict, 0) + r["n"]
        total += r["n"]
    return {
        "by_category": [
            {"category__slug": slug, "category__name": name, "n": n}
            for (slug, name), n in sorted(by_category.items(), key=lambda item: (-item[1], item[0]))
        ],
        "by_status": [{"status": k, "n": n} for k, n in sorted(by_status.items())],
        "by_backend": [{"backend": k, "n": n} for k, n in sorted(by_backend.items())],
        "health": health,
        "total": total,
    }


def overview_counts() -> tuple[dict, FleetCounts | None]:
    """The overview's counts and, when they are the worker's snapshot and not counted now, the snapshot.

    A fleet smaller than ``COUNTS_EXACT_BELOW`` is counted on every visit; a larger one reads what the
    worker counted last (every ``COUNTS_INTERVAL``), unless that is older than three intervals (the
    worker is not running): then it is counted now.
    """
    snapshot = FleetCounts.objects.order_by("-taken_at").first()
    fresh = timezone.now() - timedelta(seconds=3 * settings.ADMINVMS["COUNTS_INTERVAL"])
    if (
        snapshot is None
        or snapshot.taken_at < fresh
        or snapshot.counts["total"] < settings.ADMINVMS["COUNTS_EXACT_BELOW"]
    ):
        return fleet_counts(), None
    return snapshot.counts, snapshot


@transaction.atomic
def counts_take() -> FleetCounts:
    """Count the fleet now and keep it as the overview's snapshot (one row: the older ones go)."""
    snapshot = FleetCounts.objects.create(taken_at=timezone.now(), counts=fleet_counts())
    FleetCounts.objects.exclude(pk=snapshot.pk).delete()
    return snapshot
