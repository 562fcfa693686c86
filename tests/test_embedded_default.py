"""The embedded default of the quick start: SQLite, the filesystem broker, the sim backend.

Runs in subprocesses with the production settings module and no DATABASE_URL or
CELERY_BROKER_URL, exactly as ``make run`` does: migrations from an empty SQLite
file, ``seed_demo``, a real worker on the broker-less transport, and a launch
that turns ACTIVE.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from .worker import REPO

LAUNCH = """
import django, time
django.setup()
from django.contrib.auth import get_user_model
from categories.models import InstanceCategory
from instances import services
from instances.models import Instance
alice = get_user_model().objects.get(username="alice")
[instance] = services.instance_launch(user=alice, name="smoke", category=InstanceCategory.objects.get(slug="vsa"))
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    instance.refresh_from_db()
    if instance.status == "ACTIVE" and not instance.task_state:
        print("ACTIVE", instance.addresses)
        break
    time.sleep(0.2)
else:
    raise SystemExit(f"still {instance.status}/{instance.task_state}")

# The EC2 API's JSON and pattern lookups on SQLite: a tag filter, a name wildcard.
from tenancy.services import ec2_credential_create
from tests.ec2_signing import call, xml
Instance.objects.filter(pk=instance.pk).update(tags={"env": "smoke"})
credential, secret = ec2_credential_create(user=alice)
found = xml(call(credential.access, secret, "DescribeInstances", Category="vsa",
                 **{"Filter.1.Name": "tag:env", "Filter.1.Value.1": "smoke"}))
print("EC2", [e.text for e in found.iter("instanceId")] == ["i-" + instance.pk.hex])
images = xml(call(credential.access, secret, "DescribeImages", **{"Filter.1.Name": "name", "Filter.1.Value.1": "*"}))
print("AMI", len(list(images.iter("imageId"))) > 0)

# EC2's wildcards on SQLite, whose regular expressions (Python's re) backtracked: each star doubled
# the time, 17 took seconds (issue 21). The worst cases against long names, together.
from categories.models import Image
Image.objects.bulk_create(Image(name="a" * 250 + str(n), kind="vm") for n in range(5))
def named(value):
    answer = call(credential.access, secret, "DescribeImages", **{"Filter.1.Name": "name", "Filter.1.Value.1": value})
    return list(xml(answer).iter("imageId"))
started = time.monotonic()
for attack in ("*" * 60 + "#", "*a" * 100 + "#", "?*" * 100 + "#", "a*" * 120 + "#"):
    assert not named(attack), attack
print("GLOB", len(named("a*" * 100)) == 5 and not named("A*"), round(time.monotonic() - started, 2))
"""


@pytest.fixture
def embedded_env(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "CELERY_BROKER_URL"}}
    env.update(
        DJANGO_SETTINGS_MODULE="adminvms_dashboard.settings",
        ADMINVMS_DATA_DIR=str(tmp_path),
        ADMINVMS_DEMO_PASSWORD="smoke-test",
        ADMINVMS_SIM_BOOT_SECONDS="0.3",
        ADMINVMS_POLL_INTERVAL="0.2",
        ADMINVMS_CELERY_EAGER="0",
    )
    return env


def _manage(env, *args):
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_quick_start_on_sqlite_with_the_filesystem_broker(embedded_env, tmp_path):
    _manage(embedded_env, "migrate", "--noinput")
    assert (tmp_path / "adminvms.sqlite3").exists()
    _manage(embedded_env, "makemigrations", "--check", "--dry-run")
    _manage(embedded_env, "seed_demo")
    assert "Demo data is in place" in _manage(embedded_env, "seed_demo")  # the second run changes nothing

    log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "adminvms_dashboard", "worker", "--pool=solo", "--loglevel=INFO"],
        cwd=REPO, env=embedded_env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while " ready." not in (tmp_path / "worker.log").read_text():
            assert worker.poll() is None and time.monotonic() < deadline, (tmp_path / "worker.log").read_text()
            time.sleep(0.2)
        result = subprocess.run(
            [sys.executable, "-c", LAUNCH], cwd=REPO, env=embedded_env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stdout + result.stderr + (tmp_path / "worker.log").read_text()
        assert result.stdout.startswith("ACTIVE")
        assert "EC2 True" in result.stdout and "AMI True" in result.stdout, result.stdout
        # Matched in linear time: the four worst cases within what a few listings cost.
        [glob] = [line.split() for line in result.stdout.splitlines() if line.startswith("GLOB")]
        assert glob[1] == "True" and float(glob[2]) < 5.0, result.stdout
    finally:
        worker.terminate()
        worker.wait(15)
