"""A real Celery worker process on the real Redis broker, for integration tests."""

from __future__ import annotations

import os
import signal
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

    def __init__(self, queue: str, log_dir: Path, *, beat: bool = False, **env: str):
        self.queue = queue
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
            [sys.executable, "-m", "celery", "-A", "adminvms_dashboard", "worker", "--pool=prefork",
             "--concurrency=1", "--without-gossip", "--without-mingle", "--loglevel=INFO", "-Q", self.queue,
             "-n", f"test-{uuid.uuid4().hex[:6]}@%h", *self.beat_args],
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
