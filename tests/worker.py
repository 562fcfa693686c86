"""A real Celery worker process on the real Redis broker, for integration tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

from django.db import connection

REPO = Path(__file__).resolve().parent.parent


def test_database_url() -> str:
    """The URL of the database this test process uses (pytest-django's test database)."""
    s = connection.settings_dict
    return f"postgres://{s['USER']}:{s['PASSWORD']}@{s['HOST']}:{s['PORT']}/{s['NAME']}"


class WorkerProcess:
    """``celery worker`` in its own process group, consuming a queue of its own."""

    def __init__(
        self, queue: str, log_dir: Path, *, beat: bool = False, app: str = "adminvms_dashboard", concurrency: int = 1,
        **env: str,
    ):  # fmt: skip
        self.queue = queue
        # ``app``: another Celery app module (the soak's, whose sim driver injects faults).
        self.app, self.concurrency = app, concurrency
        # With beat: the periodic tasks (reconcile, health checks, the fleet pass) too, in this process.
        self.beat_args = ["--beat", f"--schedule={log_dir / 'celerybeat-schedule'}"] if beat else []
        self.log_path = log_dir / f"worker-{uuid.uuid4().hex[:8]}.log"
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "adminvms_dashboard.settings_test",
            "DATABASE_URL": test_database_url(),
            "ADMINVMS_QUEUE": queue,
            "ADMINVMS_CELERY_EAGER": "0",
            "ADMINVMS_DATA_DIR": str(log_dir),
            # A killed worker's message comes back after this (FACTS.md).
            "ADMINVMS_VISIBILITY_TIMEOUT": "10",
            "ADMINVMS_UNACKED_RESTORE_INTERVAL": "1",
            "ADMINVMS_UNACKED_RESTORE_THROTTLE": "1",
            **env,
        }
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> WorkerProcess:
        log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", self.app, "worker", "--pool=prefork",
             f"--concurrency={self.concurrency}", "--without-gossip", "--without-mingle", "--loglevel=INFO",
             "-Q", self.queue, "-n", f"test-{uuid.uuid4().hex[:6]}@%h", *self.beat_args],
            cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{self.tail()}")
            if " ready." in self.log_path.read_text():
                return self
            time.sleep(0.2)
        raise RuntimeError(f"worker not ready after {timeout} s:\n{self.tail()}")

    def kill(self) -> None:
        """SIGKILL the whole worker (main process and pool children)."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def tail(self, lines: int = 60) -> str:
        text = self.log_path.read_text() if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """A private ``redis-server`` on a free loopback port, for tests that stop the broker.

    It keeps an append-only file (fsync on every write), so a stop and a start keep the queues
    and the unacknowledged messages, as a production Redis with persistence does. Never the
    shared Redis: other tests and CI runs use that one.
    """

    def __init__(self, data_dir: Path, port: int | None = None):
        self.port = port or free_port()
        self.data_dir = data_dir / f"redis-{self.port}"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.data_dir / "redis.log"
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 20) -> RedisServer:
        self.proc = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.data_dir),
             "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--protected-mode", "yes",
             "--logfile", str(self.log_path), "--daemonize", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited early:\n{self.tail()}")
            if self.answers():
                return self
            time.sleep(0.05)
        raise RuntimeError(f"redis-server not answering after {timeout} s:\n{self.tail()}")

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        """SIGTERM: Redis writes its append-only file and exits, as ``systemctl stop redis`` does."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text() if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])
