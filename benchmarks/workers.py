"""Real ``celery worker`` processes for the lifecycle benchmark, held idle until a burst is queued.

Each worker consumes a parking queue of its own until told (``add_consumer``, by name: other
workers on the same Redis never hear it) to consume the queue where the burst waits; so a figure
is the workers' rate over a backlog, not the rate at which this process can send requests.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent


class Workers:
    def __init__(self, app, *, count: int, queue: str, database_url: str):
        self.app, self.queue = app, queue
        tag = uuid.uuid4().hex[:6]
        self.parking = f"{queue}-parked"
        self.names = [f"bench{n}-{tag}@{socket.gethostname()}" for n in range(1, count + 1)]
        self.dir = Path(tempfile.mkdtemp(prefix="adminvms-bench-"))
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "adminvms_dashboard.settings_test",
            "DATABASE_URL": database_url,
            "ADMINVMS_QUEUE": queue,
            "ADMINVMS_CELERY_EAGER": "0",
            "ADMINVMS_BACKENDS": "sim",
            "ADMINVMS_DATA_DIR": str(self.dir),
            "ADMINVMS_LOG_LEVEL": "WARNING",
        }
        self.procs: list[subprocess.Popen] = []

    def start(self) -> Workers:
        for name in self.names:
            log = (self.dir / f"{name.partition('@')[0]}.log").open("w")
            self.procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "celery",
                        "-A",
                        "adminvms_dashboard",
                        "worker",
                        "--pool=prefork",
                        "--concurrency=1",
                        "--without-gossip",
                        "--without-mingle",
                        "--loglevel=WARNING",
                        "--include=benchmarks.noop_task",
                        "-Q",
                        self.parking,
                        "-n",
                        name,
                    ],
                    cwd=REPO,
                    env=self.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        return self

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        pending = set(self.names)
        while pending and time.monotonic() < deadline:
            for proc in self.procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"a worker exited early:\n{self.tail()}")
            replies = self.app.control.ping(destination=list(pending), timeout=1)
            pending -= {name for reply in replies for name in reply}
        if pending:
            raise RuntimeError(f"workers not ready after {timeout} s:\n{self.tail()}")

    def consume(self) -> None:
        """Start consuming the burst queue (every worker answers before this returns)."""
        replies = self.app.control.add_consumer(self.queue, destination=self.names, reply=True, timeout=5)
        if len(replies) != len(self.names):
            raise RuntimeError(f"add_consumer: {replies}")

    def park(self) -> None:
        self.app.control.cancel_consumer(self.queue, destination=self.names, reply=True, timeout=5)

    def pids(self) -> list[int]:
        """Every process of the workers: each main process and its pool child."""
        pids = []
        for proc in self.procs:
            try:
                main = psutil.Process(proc.pid)
                pids += [main.pid, *(c.pid for c in main.children(recursive=True))]
            except psutil.NoSuchProcess:
                continue
        return pids

    def children(self) -> list[int]:
        """The pool children: the processes that run the tasks."""
        mains = {proc.pid for proc in self.procs}
        return [pid for pid in self.pids() if pid not in mains]

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)

    def tail(self, lines: int = 40) -> str:
        out = []
        for log in sorted(self.dir.glob("*.log")):
            out += [f"--- {log.name}", *log.read_text().splitlines()[-lines:]]
        return "\n".join(out)
