"""The soak's scenarios, shared by the short version (``tests/test_soak.py``) and ``make soak``.

Each scenario drives the REST API in this process (Django's test client, the real views and
services), real ``celery worker`` processes on a Redis of the soak's own (``RedisServer``: never
the shared one, which the soak stops), and returns a ``Result``: the counts the invariants are read
from. Nothing here asserts; ``Result.broken`` names the invariants that do not hold.

What is counted, and how:

- **duplicates**: backend servers made for the same instance and generation, over the whole run
  (deleted ones too). On the sim, a trigger logs every row inserted into its server table; on
  Docker, the engine's ``create`` events of the soak's project.
- **lost**: accepted requests (202) whose action never ended. What reconcile does first (end the
  actions past their deadline, ``actions_expire``) runs every 2 s here, without its 60 s grace.
- **expired**: actions that ended that way, in ERROR: their task was lost with its message (a
  worker SIGKILLed right after Redis handed it over), or they outlived their deadline.
- **transitional**: instances of the run with an action in progress, or in a transitional status,
  after every action ended and a reconcile ran.
- **leaked**: servers of the run's instances still at the backend when all were terminated.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import queue
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from random import Random

from django.db import connection
from django.db.models import Count, Q
from rest_framework.test import APIClient

from categories.models import Image, InstanceCategory
from instances import services
from instances.choices import ActionStatus, Status
from instances.models import Instance, InstanceAction, InstanceEvent
from instances.services.records import QUEUE_RESENT, QUEUE_UNAVAILABLE
from tenancy.models import Project

from ..worker import REPO, RedisServer, WorkerProcess, free_port

OPEN = (ActionStatus.PENDING, ActionStatus.RUNNING)
TRANSITIONAL = (Status.BUILDING, Status.REBOOTING, Status.DELETING)
SETTLED = (Status.ACTIVE, Status.STOPPED, Status.ERROR)
DOCKER_IMAGE = "adminvms/busybox:test"
# The soak's workers: a killed worker's messages come back after the visibility timeout (FACTS.md).
WORKER_ENV = {
    "ADMINVMS_VISIBILITY_TIMEOUT": "10",
    "ADMINVMS_UNACKED_RESTORE_INTERVAL": "1",
    "ADMINVMS_UNACKED_RESTORE_THROTTLE": "1",
}


@dataclass
class Result:
    """What one scenario measured; ``rows`` of the table, and the invariants that broke."""

    scenario: str
    backend: str = "sim"
    launches: int = 0
    terminations: int = 0
    actions: int = 0
    kills: int = 0
    child_kills: int = 0
    crashes: int = 0
    made: int = 0
    duplicates: int = 0
    transitional: int = 0
    lost: int = 0
    expired: int = 0
    failed: int = 0
    leaked: int = 0
    active: int = 0
    deleted: int = 0
    errors: int = 0
    answers: Counter = field(default_factory=Counter)
    max_retry: int = 0
    max_attempts: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    broken: list[str] = field(default_factory=list)

    @property
    def server_errors(self) -> int:
        """5xx answers but 503 (the one the issue accepts, with a message)."""
        return sum(n for code, n in self.answers.items() if isinstance(code, int) and code >= 500 and code != 503)

    def __str__(self) -> str:
        p95 = self.p95_ms()
        counts = ", ".join(
            f"{name} {getattr(self, name)}"
            for name in ("launches", "terminations", "kills", "child_kills", "crashes", "made", "duplicates",
                         "transitional", "lost", "expired", "failed", "leaked", "active", "deleted", "errors",
                         "max_retry", "max_attempts")
        )  # fmt: skip
        answers = ", ".join(f"{code}: {n}" for code, n in sorted(self.answers.items(), key=str))
        lines = [f"{self.scenario} on {self.backend} in {self.seconds:.0f} s: {counts}; answers {answers}"
                 + (f"; p95 {p95:.0f} ms" if p95 is not None else "")]  # fmt: skip
        lines += [f"  note: {note}" for note in self.notes]
        lines += [f"  BROKEN: {broken}" for broken in self.broken]
        return "\n".join(lines)

    def p95_ms(self) -> float | None:
        if len(self.latencies_ms) < 2:
            return None
        return statistics.quantiles(self.latencies_ms, n=20)[-1]

    def check(self, *, no_error: bool = False, max_retry: int | None = None, max_expired: int | None = None) -> Result:
        """Fill ``broken`` with every invariant that does not hold.

        ``no_error``: no fault was injected, so no action may fail but by its deadline (``expired``: the
        product's net for a task whose message was lost), at most ``max_expired`` of them."""
        if self.duplicates:
            self.broken.append(f"{self.duplicates} duplicate backend servers")
        if no_error and self.terminations and self.made < self.launches - self.expired:
            # Without faults every launch makes a server: fewer seen means the counting is broken.
            self.broken.append(f"only {self.made} servers seen made for {self.launches} launches")
        if self.transitional:
            self.broken.append(f"{self.transitional} instances left transitional after reconcile")
        if self.lost:
            self.broken.append(f"{self.lost} accepted requests lost (their action never ended)")
        if self.leaked:
            self.broken.append(f"{self.leaked} servers left at the backend after termination")
        if self.server_errors:
            self.broken.append(f"{self.server_errors} answers 5xx (not 503)")
        if no_error and self.failed:
            self.broken.append(f"{self.failed} actions failed without an injected fault")
        if max_expired is not None and self.expired > max_expired:
            self.broken.append(f"{self.expired} actions ended by their deadline (at most {max_expired} expected)")
        if max_retry is not None and self.max_retry > max_retry:
            self.broken.append(f"a task retried {self.max_retry} times (bound {max_retry})")
        return self


class Rig:
    """The soak's workers on its own broker and queue (this process sends there too).

    Supervised, as production runs workers (systemd's ``Restart=always``, a Kubernetes Deployment): a
    worker that exits on its own is counted in ``crashes`` and started again, with its settings.
    """

    def __init__(self, queue: str, log_dir: Path, broker: RedisServer, **env: str):
        self.queue, self.log_dir, self.broker = queue, log_dir, broker
        self.env = {**WORKER_ENV, **env, "CELERY_BROKER_URL": broker.url}
        self.workers: dict[WorkerProcess, dict] = {}  # each with the arguments it was started with
        self.expected_exits: set[WorkerProcess] = set()
        self.crashes: list[str] = []
        self._lock = threading.RLock()
        self._halt = threading.Event()
        self._supervisor = threading.Thread(target=self._supervise, daemon=True)
        self._supervisor.start()

    def worker(self, *, app: str = "adminvms_dashboard", concurrency: int = 1, beat: bool = False, **env: str):
        spec = {"app": app, "concurrency": concurrency, "beat": beat, **env}
        worker = WorkerProcess(
            self.queue, self.log_dir, app=app, concurrency=concurrency, beat=beat, **{**self.env, **env}
        )
        with self._lock:
            if self._halt.is_set():
                raise RuntimeError("the rig is closed")
            self.workers[worker] = spec
        return worker.start(timeout=120)

    def kill(self, worker: WorkerProcess) -> WorkerProcess:
        """SIGKILL the whole worker and start another like it."""
        with self._lock:
            self.expected_exits.add(worker)
        worker.kill()
        return self.worker(**self.workers[worker])

    def live(self, *, beat: bool | None = None) -> list[WorkerProcess]:
        with self._lock:
            return [
                w for w, spec in self.workers.items()
                if w.proc and w.proc.poll() is None and (beat is None or spec["beat"] == beat)
            ]  # fmt: skip

    def _supervise(self) -> None:
        while not self._halt.wait(0.5):
            with self._lock:
                exited = [
                    w for w in self.workers
                    if w.proc and w.proc.poll() is not None and w not in self.expected_exits
                ]  # fmt: skip
                self.expected_exits.update(exited)
            for worker in exited:
                text = worker.log_path.read_text() if worker.log_path.exists() else ""
                why = [line for line in text.splitlines() if "CRITICAL" in line] or ["?"]
                self.crashes.append(f"exit {worker.proc.returncode}: {why[0][:200]}")
                with contextlib.suppress(Exception):
                    self.worker(**self.workers[worker])

    def close(self) -> None:
        self._halt.set()
        self._supervisor.join(130)  # a worker it is starting, then no more
        with self._lock:
            self.expected_exits.update(self.workers)
        for worker in self.live():
            worker.stop()

    def logs(self) -> str:
        return "\n".join(w.log_path.read_text() for w in list(self.workers) if w.log_path.exists())

    def max_retry(self) -> int:
        """The highest retry of a backend call any worker logged (instances.tasks.run_action)."""
        found = re.findall(r"backend unavailable .*; retry (\d+) in", self.logs())
        return max((int(n) for n in found), default=0)


def pool_children(worker: WorkerProcess) -> list[int]:
    """The pids of a worker's pool processes (its main process's children)."""
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == worker.proc.pid:
                    children.append(int(entry.name))
    return children


class Killer(threading.Thread):
    """SIGKILLs a random worker: at random moments (every ``every`` seconds, drawn), or when asked
    (``kill_soon``, then after a random fraction of a second). The whole worker (a new one starts in
    its place) or, a ``child_share`` of the time, only the pool process that runs the task (the pool
    makes a new one)."""

    def __init__(self, rig: Rig, *, rng: Random, every: tuple[float, float] | None = None, child_share: float = 0.3,
                 kinds: tuple[str, ...] = ()):  # fmt: skip
        super().__init__(daemon=True)
        self.rig, self.rng, self.every, self.child_share = rig, rng, every, child_share
        self.kinds = list(kinds)  # "worker" or "child" for the first kills; then drawn
        self.kills = self.child_kills = 0
        self.halt = threading.Event()
        self.asked: queue.Queue = queue.Queue()
        self.errors: list[str] = []

    def _log(self, line: str) -> None:
        with (self.rig.log_dir / "kills.log").open("a") as log:
            log.write(f"{time.strftime('%H:%M:%S')}.{int(time.time() * 1000) % 1000:03d} {line}\n")

    def kill_soon(self) -> None:
        self.asked.put(True)

    def _next(self) -> bool:
        if self.every is not None:
            return not self.halt.wait(self.rng.uniform(*self.every))
        while not self.halt.is_set():
            with contextlib.suppress(queue.Empty):
                self.asked.get(timeout=0.2)
                time.sleep(self.rng.uniform(0, 0.5))
                return True
        return False

    def run(self) -> None:
        try:
            while self._next():
                victims = self.rig.live(beat=False)
                if not victims:
                    continue
                victim = self.rng.choice(victims)
                children = pool_children(victim)
                kind = self.kinds.pop(0) if self.kinds else ""
                if children and (kind == "child" or (not kind and self.rng.random() < self.child_share)):
                    child = self.rng.choice(children)
                    self._log(f"SIGKILL pool process {child} of {victim.log_path.name}")
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(child, signal.SIGKILL)
                    self.child_kills += 1
                else:
                    self._log(f"SIGKILL worker {victim.proc.pid} ({victim.log_path.name})")
                    self.rig.kill(victim)
                    self.kills += 1
        except Exception as exc:  # reported, never silent
            self.errors.append(repr(exc))

    def stop(self) -> None:
        """Stop killing; the kills asked for before are made first."""
        while self.every is None and not self.asked.empty() and self.is_alive():
            time.sleep(0.1)
        self.halt.set()
        self.join(180)


# --- counting servers made -------------------------------------------------------------------------


class SimServerLog:
    """Every row inserted into the sim's server table, logged by a trigger (PostgreSQL): deleted
    servers count too."""

    def __enter__(self):
        with connection.cursor() as cursor:
            cursor.execute(
                "CREATE TABLE IF NOT EXISTS soak_sim_created (instance_uuid uuid, generation integer, "
                "backend_id uuid, created_at timestamptz DEFAULT now())"
            )
            cursor.execute("TRUNCATE soak_sim_created")
            cursor.execute(
                "CREATE OR REPLACE FUNCTION soak_sim_log() RETURNS trigger AS $$ BEGIN "
                "INSERT INTO soak_sim_created (instance_uuid, generation, backend_id) "
                "VALUES (NEW.instance_uuid, NEW.generation, NEW.id); RETURN NEW; END $$ LANGUAGE plpgsql"
            )
            cursor.execute("DROP TRIGGER IF EXISTS soak_sim_log ON instances_simserver")
            cursor.execute(
                "CREATE TRIGGER soak_sim_log AFTER INSERT ON instances_simserver "
                "FOR EACH ROW EXECUTE FUNCTION soak_sim_log()"
            )
        return self

    def duplicates(self, instance_ids) -> int:
        """Servers beyond the first per instance and generation."""
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT COALESCE(SUM(n - 1), 0) FROM (SELECT COUNT(*) AS n FROM soak_sim_created "
                "WHERE instance_uuid = ANY(%s) GROUP BY instance_uuid, generation) made",
                [[uuid.UUID(str(i)) for i in instance_ids]],
            )
            return int(cursor.fetchone()[0])

    def made(self, instance_ids) -> int:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT COUNT(*) FROM soak_sim_created WHERE instance_uuid = ANY(%s)",
                [[uuid.UUID(str(i)) for i in instance_ids]],
            )
            return int(cursor.fetchone()[0])

    def __exit__(self, *exc):
        with connection.cursor() as cursor:
            cursor.execute("DROP TRIGGER IF EXISTS soak_sim_log ON instances_simserver")
            cursor.execute("DROP FUNCTION IF EXISTS soak_sim_log()")
            cursor.execute("DROP TABLE IF EXISTS soak_sim_created")


class DockerCreateLog(threading.Thread):
    """The engine's ``create`` events of containers of the soak's project, as they happen."""

    def __init__(self, project_slug: str):
        super().__init__(daemon=True)
        import docker

        self.engine = docker.from_env(timeout=30)
        self.project = project_slug
        self.created: Counter = Counter()
        self._since = int(time.time()) - 1
        self._events = None

    def __enter__(self):
        self._events = self.engine.events(
            since=self._since,
            decode=True,
            filters={"type": "container", "event": "create", "label": f"adminvms.project={self.project}"},
        )
        self.start()
        return self

    def run(self) -> None:
        with contextlib.suppress(Exception):  # the stream ends when closed
            for event in self._events:
                labels = (event.get("Actor") or {}).get("Attributes") or {}
                self.created[(labels.get("adminvms.instance"), labels.get("adminvms.generation", "0"))] += 1

    def duplicates(self, instance_ids) -> int:
        time.sleep(1)  # the last events
        wanted = {str(i) for i in instance_ids}
        return sum(n - 1 for (iid, _), n in self.created.items() if iid in wanted)

    def made(self, instance_ids) -> int:
        wanted = {str(i) for i in instance_ids}
        return sum(n for (iid, _), n in self.created.items() if iid in wanted)

    def leftovers(self) -> list:
        return self.engine.containers.list(all=True, filters={"label": f"adminvms.project={self.project}"})

    def __exit__(self, *exc):
        with contextlib.suppress(Exception):
            self._events.close()
        for container in self.leftovers():
            container.remove(force=True)
        for network in self.engine.networks.list(filters={"label": f"adminvms.project={self.project}"}):
            with contextlib.suppress(Exception):
                network.remove()


# --- the catalog the soak launches into ---------------------------------------------------------------


def soak_category(*, backend: str) -> tuple[InstanceCategory, Project]:
    """A category of regular instances without quota on ``backend`` (the demo's ``standard`` flavor and,
    on the sim, its image; on Docker a busybox container), and a project of the soak's own."""
    standard = InstanceCategory.objects.get(slug="standard")
    tag = uuid.uuid4().hex[:8]
    project = Project.objects.create(slug=f"soak-{tag}", name=f"Soak {tag}")
    if backend == "docker":
        image = Image.objects.create(name=f"soak-{tag}", kind="container", backend_id=DOCKER_IMAGE)
    else:
        image = standard.default_image
    category = InstanceCategory.objects.create(
        slug=f"soak-{backend}-{tag}", name=f"Soak on {backend}", kind=image.kind, management="user",
        user_visible=True, user_operations=["launch", "reboot", "stop", "start", "terminate"],
        network_placement="project", backend=backend, default_flavor=standard.default_flavor, default_image=image,
    )  # fmt: skip
    category.allowed_flavors.add(standard.default_flavor)
    image.categories.add(category)
    return category, project


def admin_client(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


# --- scenarios ---------------------------------------------------------------------------------------


def _launch(client, result: Result, *, category, project, name: str) -> str | None:
    started = time.perf_counter()
    response = client.post(
        "/api/v1/instances/", {"name": name, "category": category.slug, "project": project.slug}, format="json"
    )
    result.latencies_ms.append((time.perf_counter() - started) * 1000)
    result.answers[response.status_code] += 1
    if response.status_code == 202:
        result.launches += 1
        return response.json()["id"]
    if response.status_code >= 500 and response.status_code != 503:
        result.notes.append(f"launch answered {response.status_code}: {response.content[:200]!r}")
    return None


def _terminate(client, result: Result, iid: str, accepted: list[str]) -> bool:
    response = client.delete(f"/api/v1/instances/{iid}/")
    result.answers[response.status_code] += 1
    if response.status_code == 202:
        result.terminations += 1
        accepted.append(response.json()["action_id"])
        return True
    if response.status_code >= 500 and response.status_code != 503:
        result.notes.append(f"terminate answered {response.status_code}: {response.content[:200]!r}")
    return False


def _settled(ids) -> set[str]:
    rows = Instance.objects.filter(pk__in=list(ids), status__in=SETTLED, task_state="").values_list("pk", flat=True)
    return {str(pk) for pk in rows}


def _open_actions(action_ids) -> int:
    return InstanceAction.objects.filter(pk__in=list(action_ids), status__in=OPEN).count()


def _launch_actions(instance_ids) -> list[str]:
    rows = InstanceAction.objects.filter(instance_id__in=list(instance_ids), action="launch")
    return [str(pk) for pk in rows.values_list("pk", flat=True)]


def _finish(result: Result, *, backend: str, instance_ids: list[str], action_ids: list[str], servers,
            settle_timeout: float, started: float) -> Result:  # fmt: skip
    """Wait for every accepted action to end, reconcile, and count."""
    deadline = time.monotonic() + settle_timeout
    while _open_actions(action_ids) and time.monotonic() < deadline:
        _expire()
        time.sleep(0.5)
    result.lost = _open_actions(action_ids)
    services.instances_reconcile(backends=[backend])
    failed = InstanceAction.objects.filter(pk__in=action_ids, status=ActionStatus.FAILED)
    messages = list(failed.values_list("message", flat=True))
    result.expired = sum(1 for m in messages if any(f in m for f in DEADLINE_FAULTS))
    result.failed = len(messages) - result.expired
    rows = Instance.objects.filter(pk__in=instance_ids)
    result.transitional = rows.filter(Q(status__in=TRANSITIONAL) | ~Q(task_state="")).count()
    statuses = Counter(rows.values_list("status", flat=True))
    result.deleted, result.errors = statuses[Status.DELETED], statuses[Status.ERROR]
    result.active = statuses[Status.ACTIVE]
    result.actions = len(action_ids)
    result.duplicates = servers.duplicates(instance_ids)
    result.made = servers.made(instance_ids)
    result.max_attempts = max(
        InstanceAction.objects.filter(pk__in=action_ids).values_list("attempts", flat=True), default=0
    )
    result.seconds = time.monotonic() - started
    # Servers left behind by instances that reached DELETED (an ERROR instance may keep its server).
    deleted = [str(pk) for pk in rows.filter(status=Status.DELETED).values_list("pk", flat=True)]
    if backend == "sim":
        from instances.drivers.sim.models import SimServer

        result.leaked = SimServer.objects.filter(instance_uuid__in=deleted).count()
    else:
        wanted = set(deleted)
        result.leaked = sum(1 for c in servers.leftovers() if c.labels.get("adminvms.instance") in wanted)
    faults = Counter(rows.filter(status=Status.ERROR).values_list("fault", flat=True))
    for fault, n in faults.most_common(4):
        result.notes.append(f"{n} ERROR: {fault[:110]}")
    return result


# What the product says of an action whose task never came back (actions_expire, action_step).
DEADLINE_FAULTS = ("was abandoned", "did not finish within")
_last_expiry = [0.0]


def _expire() -> None:
    """What the periodic reconcile does first (``actions_expire``), every 2 s and without its 60 s grace
    after a deadline: a task lost with its message ends the action in ERROR, never left open."""
    if time.monotonic() - _last_expiry[0] >= 2:
        _last_expiry[0] = time.monotonic()
        services.actions_expire(grace_seconds=0)


def _worker_facts(result: Result, rig: Rig) -> None:
    result.max_retry = rig.max_retry()
    result.crashes = len(rig.crashes)
    result.notes.extend(f"worker crashed ({crash}); restarted" for crash in rig.crashes)


def lifecycles(
    rig: Rig, *, scenario: str, user, category, project, n: int, rate: float, settle_timeout: float,
    worker_count: int = 2, concurrency: int = 1, app: str = "adminvms_dashboard", worker_env: dict | None = None,
    kill_every: tuple[float, float] | None = None, kill_after: tuple[int, ...] = (), child_share: float = 0.3,
    kill_kinds: tuple[str, ...] = (), seed: int = 0,
) -> Result:  # fmt: skip
    """``n`` launches at ``rate`` a second and the termination of each once it settled. Workers are
    killed at random moments (``kill_every``: the range of seconds between kills, until every request
    was made) or soon after given launches (``kill_after``: their numbers, 1-based). Ends when every
    termination was accepted and every accepted action ended, or ``settle_timeout`` after the last request."""
    backend = category.backend
    result = Result(scenario=scenario, backend=backend)
    env = worker_env or {}
    rng = Random(seed)
    started = time.monotonic()
    for _ in range(worker_count):
        rig.worker(app=app, concurrency=concurrency, **env)
    killer = None
    if kill_every or kill_after:
        killer = Killer(rig, rng=rng, every=kill_every, child_share=child_share, kinds=kill_kinds)
    client = admin_client(user)
    servers = SimServerLog() if backend == "sim" else DockerCreateLog(project.slug)
    instance_ids: list[str] = []
    terminations: list[str] = []
    terminated: set[str] = set()
    with servers:
        if killer:
            killer.start()
        next_launch = last_request = time.monotonic()
        tried = 0
        while True:
            now = time.monotonic()
            if tried < n and now >= next_launch:
                tried += 1
                if iid := _launch(client, result, category=category, project=project, name=f"soak-{tried}"):
                    instance_ids.append(iid)
                if killer and tried in kill_after:
                    killer.kill_soon()
                next_launch, last_request = now + 1 / rate, now
            for iid in sorted(_settled(set(instance_ids) - terminated)):
                if _terminate(client, result, iid, terminations):
                    terminated.add(iid)
                    last_request = time.monotonic()
            _expire()
            done_requests = tried >= n and terminated >= set(instance_ids)
            if done_requests and killer and killer.is_alive():
                killer.stop()
            if done_requests and not _open_actions(terminations):
                break
            if time.monotonic() - last_request > settle_timeout:
                result.notes.append(f"gave up waiting {settle_timeout:.0f} s after the last request")
                break
            time.sleep(0.1)
        if killer:
            killer.stop()
            result.kills, result.child_kills = killer.kills, killer.child_kills
            result.notes.extend(f"killer: {e}" for e in killer.errors)
        actions = _launch_actions(instance_ids) + terminations
        _finish(result, backend=backend, instance_ids=instance_ids, action_ids=actions, servers=servers,
                settle_timeout=settle_timeout, started=started)  # fmt: skip
    _worker_facts(result, rig)
    return result


def broker_outage(
    rig: Rig, *, user, category, project, duration: float, outage_at: float, outage: float, rate: float,
    settle_timeout: float, worker_env: dict | None = None, reconcile_interval: float = 1,
) -> Result:  # fmt: skip
    """Launches at ``rate`` a second for ``duration`` seconds; the broker stops ``outage_at`` seconds in,
    for ``outage`` seconds. Every accepted launch must reach ACTIVE after the broker is back (a worker
    with beat runs reconcile, which sends the actions that waited for the queue); then all are terminated.
    The answers during the outage are counted apart (``answers`` keys ``"outage <code>"``)."""
    result = Result(scenario=f"broker down {outage:.0f} s", backend=category.backend)
    env = worker_env or {}
    started = time.monotonic()
    rig.worker(beat=True, ADMINVMS_RECONCILE_INTERVAL=str(reconcile_interval), **env)
    rig.worker(**env)
    client = admin_client(user)
    instance_ids: list[str] = []
    down_latencies: list[float] = []
    stopped_at = None
    with SimServerLog() if category.backend == "sim" else DockerCreateLog(project.slug) as servers:
        t0 = time.monotonic()
        while (elapsed := time.monotonic() - t0) < duration:
            if stopped_at is None and elapsed >= outage_at:
                rig.broker.stop()
                stopped_at = time.monotonic()
            down = rig.broker.proc.poll() is not None
            if stopped_at is not None and down and time.monotonic() - stopped_at >= outage:
                rig.broker.start()
                result.notes.append(f"broker stopped {time.monotonic() - stopped_at:.1f} s")
            down = rig.broker.proc.poll() is not None
            before = result.answers.copy()
            iid = _launch(client, result, category=category, project=project, name=f"outage-{len(instance_ids)}")
            if down:
                code = next(iter((result.answers - before).keys()))
                result.answers[f"outage {code}"] += 1
                down_latencies.append(result.latencies_ms[-1])
            if iid:
                instance_ids.append(iid)
            time.sleep(max(0.0, 1 / rate - result.latencies_ms[-1] / 1000))
        if rig.broker.proc.poll() is not None:
            rig.broker.start()
        # Every accepted launch completes (no fault is injected: ACTIVE).
        deadline = time.monotonic() + settle_timeout
        while time.monotonic() < deadline and _open_actions(_launch_actions(instance_ids)):
            _expire()
            time.sleep(0.5)
        result.active = Instance.objects.filter(pk__in=instance_ids, status=Status.ACTIVE).count()
        waited = InstanceEvent.objects.filter(instance_id__in=instance_ids, event=QUEUE_UNAVAILABLE)
        result.notes.append(
            f"{waited.values('action_id').distinct().count()} actions waited for the queue, "
            f"{InstanceEvent.objects.filter(instance_id__in=instance_ids, event=QUEUE_RESENT).count()} sent again; "
            f"{result.active}/{len(instance_ids)} launches ACTIVE before terminations"
        )
        if down_latencies:
            result.notes.append(f"API while the broker was down: max {max(down_latencies):.0f} ms")
        not_active = len(instance_ids) - result.active
        terminations: list[str] = []
        pending = set(instance_ids)
        deadline = time.monotonic() + settle_timeout
        while pending and time.monotonic() < deadline:
            for iid in sorted(_settled(pending)):
                if _terminate(client, result, iid, terminations):
                    pending.discard(iid)
            time.sleep(0.2)
        actions = _launch_actions(instance_ids) + terminations
        _finish(result, backend=category.backend, instance_ids=instance_ids, action_ids=actions, servers=servers,
                settle_timeout=settle_timeout, started=started)  # fmt: skip
    if not_active:
        result.broken.append(f"{not_active} accepted launches did not reach ACTIVE after the broker returned")
    _worker_facts(result, rig)
    if result.crashes:
        # The rig restarts a worker that exits, so the launches complete anyway: the exit itself breaks.
        result.broken.append(f"{result.crashes} workers exited during the broker outage instead of reconnecting")
    return result


def launch_counts(instance_ids) -> dict:
    return dict(
        Instance.objects.filter(pk__in=instance_ids).values("status").annotate(n=Count("pk")).values_list("status", "n")
    )


# --- the web tier under load ---------------------------------------------------------------------------


class Gunicorn:
    """gunicorn serving the product (production settings) on a free loopback port, as scripts/run.sh does."""

    def __init__(self, log_dir: Path, *, database_url: str, broker_url: str, queue: str, workers: int = 2,
                 threads: int = 4):  # fmt: skip
        self.port = free_port()
        self.log_path = log_dir / f"gunicorn-{self.port}.log"
        self.args = [
            sys.executable, "-m", "gunicorn", "adminvms_dashboard.wsgi", "--bind", f"127.0.0.1:{self.port}",
            "--workers", str(workers), "--threads", str(threads), "--graceful-timeout", "5",
        ]  # fmt: skip
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "adminvms_dashboard.settings",
            "DATABASE_URL": database_url,
            "CELERY_BROKER_URL": broker_url,
            "ADMINVMS_QUEUE": queue,
            "ADMINVMS_DATA_DIR": str(log_dir),
            "ADMINVMS_BACKENDS": "sim",
            "ADMINVMS_ALLOWED_HOSTS": "127.0.0.1",
        }
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> Gunicorn:
        with self.log_path.open("w") as log:
            self.proc = subprocess.Popen(
                self.args, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited:\n{self.log_path.read_text()[-3000:]}")
            with contextlib.suppress(OSError):
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    return self
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn not answering after {timeout} s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


@dataclass
class _Client:
    token: str
    project: str
    list_path: str
    latencies: dict = field(default_factory=lambda: {"list": [], "launch": []})
    answers: Counter = field(default_factory=Counter)
    launched: list = field(default_factory=list)
    errors: list = field(default_factory=list)


def _client_loop(client: _Client, port: int, until: float, rng: Random, launch_share: float) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Authorization": f"Token {client.token}", "Content-Type": "application/json"}
    n = 0
    while time.monotonic() < until:
        launching = rng.random() < launch_share
        started = time.perf_counter()
        try:
            if launching:
                n += 1
                body = json.dumps({"name": f"load-{uuid.uuid4().hex[:6]}", "project": client.project})
                conn.request("POST", "/api/v1/instances/", body=body, headers=headers)
            else:
                conn.request("GET", client.list_path, headers=headers)
            response = conn.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException) as exc:
            client.answers["connection error"] += 1
            client.errors.append(repr(exc))
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            continue
        client.latencies["launch" if launching else "list"].append((time.perf_counter() - started) * 1000)
        client.answers[response.status] += 1
        if launching and response.status == 202:
            client.launched.append(json.loads(payload)["id"])
        elif response.status >= 500:
            client.errors.append(f"{response.status}: {payload[:200]!r}")
    conn.close()


def web_load(rig: Rig, *, users: dict, projects: dict, clients: int, seconds: float, database_url: str,
             launch_share: float = 0.2, settle_timeout: float = 300, seed: int = 0,
             gunicorn_workers: int = 2, gunicorn_threads: int = 4) -> Result:  # fmt: skip
    """``clients`` concurrent API clients (token auth, one keep-alive connection each) listing and
    launching for ``seconds`` against gunicorn on PostgreSQL; then every accepted launch must reach ACTIVE.
    ``users``: username → user; members list their project's instances, the admin every category."""
    from knox.models import AuthToken

    result = Result(scenario=f"web: {clients} clients, {seconds:.0f} s", backend="sim")
    rng = Random(seed)
    started = time.monotonic()
    rig.worker(concurrency=2)
    rig.worker(concurrency=2)
    server = Gunicorn(rig.log_dir, database_url=database_url, broker_url=rig.broker.url, queue=rig.queue,
                      workers=gunicorn_workers, threads=gunicorn_threads).start()  # fmt: skip
    try:
        names = sorted(users)
        pool = []
        for i in range(clients):
            name = names[i % len(names)]
            user = users[name]
            _, token = AuthToken.objects.create(user=user)
            admin = user.is_superuser or name == "admin"
            listing = "/api/v1/instances/?page_size=50" + ("&category=all" if admin else "")
            pool.append(_Client(token=token, project=projects[name], list_path=listing))
        until = time.monotonic() + seconds
        threads = [
            threading.Thread(target=_client_loop, args=(c, server.port, until, Random(rng.random()), launch_share))
            for c in pool
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(seconds + 120)
    finally:
        server.stop()
    lists = [ms for c in pool for ms in c.latencies["list"]]
    launches = [ms for c in pool for ms in c.latencies["launch"]]
    for c in pool:
        result.answers.update(c.answers)
    result.latencies_ms = lists + launches
    instance_ids = [iid for c in pool for iid in c.launched]
    result.launches = len(instance_ids)
    for label, samples in (("list", lists), ("launch", launches)):
        if len(samples) >= 2:
            q = statistics.quantiles(samples, n=100)
            result.notes.append(
                f"{label}: {len(samples)} requests, {len(samples) / seconds:.1f}/s, "
                f"median {statistics.median(samples):.0f} ms, p95 {q[94]:.0f} ms, p99 {q[98]:.0f} ms, "
                f"max {max(samples):.0f} ms"
            )
    errors = [e for c in pool for e in c.errors]
    for error, n in Counter(errors).most_common(3):
        result.notes.append(f"{n} times: {error[:160]}")
    if result.answers["connection error"]:
        result.broken.append(f"{result.answers['connection error']} requests failed at the connection")
    # Every accepted launch completes.
    actions = _launch_actions(instance_ids)
    deadline = time.monotonic() + settle_timeout
    while _open_actions(actions) and time.monotonic() < deadline:
        time.sleep(1)
    result.lost = _open_actions(actions)
    rows = Instance.objects.filter(pk__in=instance_ids)
    result.active = rows.filter(status=Status.ACTIVE).count()
    result.errors = rows.filter(status=Status.ERROR).count()
    result.transitional = rows.filter(Q(status__in=TRANSITIONAL) | ~Q(task_state="")).count()
    result.actions = len(actions)
    result.seconds = time.monotonic() - started
    _worker_facts(result, rig)
    return result
