"""``make soak``: the full soak, one table, non-zero exit when an invariant breaks.

    python -m tests.soak [--only kills,faults,outage,web,docker-kills] [--launches 200] [--keep-db]

Runs on a PostgreSQL database of its own (``SOAK_DATABASE_URL``, default ``adminvms_soak_run``, made
anew and dropped at the end) and a ``redis-server`` of its own on a free loopback port (the outage
scenario stops it; the shared Redis is never touched). Scenarios:

- ``kills``: 200 launches and terminations on the sim while workers are SIGKILLed at random moments
  (the whole worker, or the pool process running the task);
- ``docker-kills``: the same on the Docker engine (busybox containers), when one answers;
- ``faults``: launches and terminations with a fifth of the backend's calls failing (errors, and
  timeouts before or after the call took effect);
- ``outage``: launches while the broker is stopped for 10 s; every accepted one must complete;
- ``web``: 50 clients listing and launching for a minute against gunicorn on PostgreSQL.

``--production-visibility`` adds the outage with the broker's default visibility timeout (600 s).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

SCENARIOS = ("kills", "docker-kills", "faults", "outage", "web")
DEFAULT_DATABASE = "postgres://postgres:postgres@127.0.0.1:5432/adminvms_soak_run"
DEMO_PASSWORD = "soak-demo-password"
SLOW_SIM = {
    "ADMINVMS_SIM_BOOT_SECONDS": "1",
    "ADMINVMS_SIM_DELETE_SECONDS": "0.5",
    "ADMINVMS_SIM_API_LATENCY": "0.2",
    "ADMINVMS_FAULT_PAUSE_AFTER_CREATE": "0.2",
    "ADMINVMS_POLL_INTERVAL": "0.3",
}


def _database(url: str, *, drop_only: bool = False) -> None:
    """Make the soak's database anew (or drop it), through the server's maintenance database."""
    from urllib.parse import urlsplit

    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if not name.startswith("adminvms_soak"):
        raise SystemExit(f"refusing to drop a database not named adminvms_soak*: {name}")
    admin = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not drop_only:
            conn.execute(f'CREATE DATABASE "{name}"')


def _docker_ready() -> str:
    """Empty when the engine answers and has the soak's image; else why not."""
    try:
        import docker

        docker.from_env(timeout=10).images.get("adminvms/busybox:test")
    except Exception as exc:
        return f"Docker not ready ({exc}); run `make docker-up`"
    return ""


def _table(results) -> str:
    columns = [
        ("scenario", lambda r: r.scenario, 28),
        ("backend", lambda r: r.backend, 7),
        ("launch", lambda r: r.launches, 6),
        ("term", lambda r: r.terminations, 5),
        ("kills", lambda r: f"{r.kills}+{r.child_kills}", 6),
        ("crash", lambda r: r.crashes, 5),
        ("made", lambda r: r.made, 4),
        ("dupl", lambda r: r.duplicates, 4),
        ("trans", lambda r: r.transitional, 5),
        ("lost", lambda r: r.lost, 4),
        ("expired", lambda r: r.expired, 7),
        ("leak", lambda r: r.leaked, 4),
        ("ERROR", lambda r: r.errors, 5),
        ("5xx", lambda r: r.server_errors, 4),
        ("503", lambda r: r.answers[503], 4),
        ("p95 ms", lambda r: f"{r.p95_ms():.0f}" if r.p95_ms() is not None else "-", 7),
        ("retry", lambda r: r.max_retry, 5),
        ("s", lambda r: f"{r.seconds:.0f}", 4),
        ("verdict", lambda r: "ok" if not r.broken else "BROKEN", 7),
    ]
    lines = [" | ".join(f"{name:<{width}}" for name, _, width in columns)]
    lines.append("-+-".join("-" * width for _, _, width in columns))
    for result in results:
        lines.append(" | ".join(f"{value(result)!s:<{width}}" for _, value, width in columns))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated scenarios")
    parser.add_argument("--launches", type=int, default=200, help="launches (and terminations) under kills")
    parser.add_argument("--fault-launches", type=int, default=100)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60, help="how long the web clients run")
    parser.add_argument("--outage", type=float, default=10, help="seconds the broker is down")
    parser.add_argument("--seed", type=int, default=int(time.time()) % 100000)
    parser.add_argument("--production-visibility", action="store_true")
    parser.add_argument("--keep-db", action="store_true", help="keep the database and logs for a look")
    args = parser.parse_args()
    wanted = [s for s in args.only.split(",") if s]
    unknown = set(wanted) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.worker import RedisServer

    work = Path(tempfile.mkdtemp(prefix="adminvms-soak-"))
    broker = RedisServer(work).start()
    database_url = os.environ.get("SOAK_DATABASE_URL", DEFAULT_DATABASE)
    docker_problem = _docker_ready() if "docker-kills" in wanted else ""
    os.environ.update(
        DJANGO_SETTINGS_MODULE="adminvms_dashboard.settings_test",
        DATABASE_URL=database_url,
        CELERY_BROKER_URL=broker.url,
        ADMINVMS_QUEUE=f"adminvms-soak-{uuid.uuid4().hex[:8]}",
        ADMINVMS_CELERY_EAGER="0",
        ADMINVMS_DEMO_PASSWORD=DEMO_PASSWORD,
        ADMINVMS_DATA_DIR=str(work),
        # An action's deadline (set when it is accepted, here): a task lost with its message ends its
        # action in ERROR at the deadline (reconcile's net), within the soak rather than after 10 min.
        ADMINVMS_ACTION_TIMEOUT=os.environ.get("ADMINVMS_ACTION_TIMEOUT", "120"),
        ADMINVMS_BACKENDS="sim" if docker_problem or "docker-kills" not in wanted else "sim,docker",
    )
    print(f"soak: seed {args.seed}, database {database_url.rsplit('/', 1)[-1]}, broker {broker.url}, logs {work}")
    _database(database_url)

    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from adminvms_dashboard.celery import app as celery_app
    from tests.soak import harness
    from tests.worker import test_database_url

    call_command("migrate", verbosity=0)
    call_command("seed_demo", quiet=True)
    users = {u.username: u for u in get_user_model().objects.all()}
    admin = users["admin"]

    def rig(name: str) -> harness.Rig:
        queue = f"adminvms-soak-{name}-{uuid.uuid4().hex[:6]}"
        celery_app.conf.task_default_queue = queue
        folder = work / name
        folder.mkdir()
        return harness.Rig(queue, folder, broker)

    results = []

    def run(name: str, scenario) -> None:
        current = rig(name)
        print(f"soak: {name} ...", flush=True)
        try:
            result = scenario(current)
        finally:
            current.close()
        print(result, flush=True)
        results.append(result)

    if "kills" in wanted:
        category, project = harness.soak_category(backend="sim")
        run("kills", lambda r: harness.lifecycles(
            r, scenario="kills", user=admin, category=category, project=project, n=args.launches, rate=4,
            settle_timeout=180, worker_count=3, worker_env=SLOW_SIM, kill_every=(2, 6), seed=args.seed,
        ).check(no_error=True))  # fmt: skip
    if "docker-kills" in wanted:
        if docker_problem:
            print(f"soak: docker-kills skipped: {docker_problem}")
        else:
            category, project = harness.soak_category(backend="docker")
            env = {"ADMINVMS_BACKENDS": "sim,docker", "ADMINVMS_POLL_INTERVAL": "0.3"}
            run("docker-kills", lambda r: harness.lifecycles(
                r, scenario="kills", user=admin, category=category, project=project, n=args.launches, rate=3,
                settle_timeout=240, worker_count=3, worker_env=env, kill_every=(2, 6), seed=args.seed,
            ).check(no_error=True))  # fmt: skip
    if "faults" in wanted:
        category, project = harness.soak_category(backend="sim")
        env = {
            **SLOW_SIM, "ADMINVMS_SOAK_FAULT_RATE": "0.2", "ADMINVMS_SOAK_TIMEOUT_SECONDS": "0.5",
            "ADMINVMS_TASK_MAX_RETRIES": "5", "ADMINVMS_ACTION_TIMEOUT": "120", "ADMINVMS_VISIBILITY_TIMEOUT": "60",
        }  # fmt: skip
        run("faults", lambda r: harness.lifecycles(
            r, scenario="faults 20%", user=admin, category=category, project=project, n=args.fault_launches, rate=4,
            settle_timeout=240, worker_count=3, app="tests.soak.celery_app", worker_env=env, seed=args.seed,
        ).check(max_retry=5))  # fmt: skip
    if "outage" in wanted:
        category, project = harness.soak_category(backend="sim")
        run("outage", lambda r: harness.broker_outage(
            r, user=admin, category=category, project=project, duration=args.outage + 20, outage_at=8,
            outage=args.outage, rate=4, settle_timeout=120, worker_env=SLOW_SIM, reconcile_interval=2,
        ).check(no_error=True))  # fmt: skip
    if args.production_visibility:
        category, project = harness.soak_category(backend="sim")
        env = {**SLOW_SIM, "ADMINVMS_VISIBILITY_TIMEOUT": "600", "ADMINVMS_UNACKED_RESTORE_INTERVAL": "10",
               "ADMINVMS_UNACKED_RESTORE_THROTTLE": "10"}  # fmt: skip

        def production(r):
            result = harness.broker_outage(
                r, user=admin, category=category, project=project, duration=args.outage + 20, outage_at=8,
                outage=args.outage, rate=4, settle_timeout=120, worker_env=env, reconcile_interval=2,
            )  # fmt: skip
            result.scenario += ", vis. 600 s"
            return result.check(no_error=True)

        run("outage-600", production)
    if "web" in wanted:
        projects = {"admin": "acme", "alice": "acme", "bob": "globex"}
        run("web", lambda r: harness.web_load(
            r, users={name: users[name] for name in projects}, projects=projects, clients=args.clients,
            seconds=args.seconds, database_url=test_database_url(), seed=args.seed,
        ).check())  # fmt: skip

    print()
    print(_table(results))
    print(
        "kills: whole workers + pool processes; crash: workers that exited on their own (restarted, as a supervisor\n"
        "would); made: servers created; dupl: more than one server for an instance; trans: instances transitional\n"
        "after reconcile; lost: accepted actions never ended; expired: actions ended in ERROR by their deadline (a\n"
        "task lost with its message); leak: servers left after DELETED; ERROR: instances in ERROR at the end;\n"
        "5xx: answers 5xx but 503; p95: the API requests the soak made; retry: highest retry of a backend call."
    )
    broken = [f"{r.scenario} on {r.backend}: {b}" for r in results for b in r.broken]
    for line in broken:
        print(f"BROKEN: {line}")
    broker.stop()
    if args.keep_db:
        print(f"soak: kept the database and the logs in {work}")
    else:
        from django.db import connections

        connections.close_all()
        _database(database_url, drop_only=True)
        shutil.rmtree(work, ignore_errors=True)
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
