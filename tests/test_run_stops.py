"""Ctrl-C on `make run` stops every process it started, within seconds and quietly.

Runs scripts/run.sh, what the Makefile's ``run`` target runs once the database
is migrated, on the embedded default (SQLite, the filesystem broker) in a
temporary data folder and on a free port of 127.0.0.1, and sends SIGINT to its
process group as a terminal does on Ctrl-C.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from .worker import REPO

VENV = Path(sys.executable).parent.parent
STOP_TIMEOUT = 15  # run.sh's ADMINVMS_STOP_TIMEOUT (its default): SIGKILL after this


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    """Still running: exists and is not a zombie (an exited process its parent has not reaped yet)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture
def run_env(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "CELERY_BROKER_URL"}}
    env.update(
        DJANGO_SETTINGS_MODULE="adminvms_dashboard.settings",
        ADMINVMS_DATA_DIR=str(tmp_path),
        ADMINVMS_STOP_TIMEOUT=str(STOP_TIMEOUT),
        VENV=str(VENV),
        HOST="127.0.0.1",
        PORT=str(_free_port()),
    )
    migrate = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr
    return env


def _as_from_a_terminal():
    # A shell runs background jobs with SIGINT ignored, and bash cannot trap a signal ignored
    # on entry: give the script the default disposition a terminal's foreground job has.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_stops_the_web_server_the_worker_and_beat(run_env, tmp_path):
    log_path = tmp_path / "run.log"
    with log_path.open("w") as log:
        run = subprocess.Popen(
            ["bash", "scripts/run.sh"], cwd=REPO, env=run_env, stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_as_from_a_terminal,
        )  # fmt: skip
    port = int(run_env["PORT"])
    try:
        deadline = time.monotonic() + 60
        while not (_healthy(port) and " ready." in log_path.read_text() and "beat: Starting" in log_path.read_text()):
            assert run.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.2)
        processes = _descendants(run.pid)
        # gunicorn's master and 2 workers, celery's main process, 2 pool processes and beat.
        assert len(processes) >= 7, processes

        started = time.monotonic()
        os.killpg(run.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        status = run.wait(timeout=STOP_TIMEOUT + 10)
        while any(_alive(pid) for pid in processes) and time.monotonic() - started < STOP_TIMEOUT + 10:
            time.sleep(0.1)
        elapsed = time.monotonic() - started
    finally:
        for pid in [run.pid, *_descendants(run.pid)]:  # never leave a server behind
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
    output = log_path.read_text()
    print(f"Ctrl-C to every process gone: {elapsed:.1f} s")  # shown with -s; the commit quotes it

    assert [pid for pid in processes if _alive(pid)] == []
    assert status == 0, output
    assert elapsed < STOP_TIMEOUT, f"not stopped gracefully: {elapsed:.1f} s\n{output}"
    assert "still running after" not in output
    assert not _healthy(port)
    for alarming in ("Segmentation fault", "Traceback", "ERROR", "WorkerLostError", "Killed", "Terminated"):
        assert alarming not in output, output
