"""Settings for pytest: the real PostgreSQL and Redis on their default local
ports (or DATABASE_URL / CELERY_BROKER_URL when set), no simulated delays."""

import os

os.environ.setdefault("DATABASE_URL", "postgres://postgres:postgres@127.0.0.1:5432/adminvms")
os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
for _name in ("BOOT", "REBOOT", "STOP", "DELETE"):
    os.environ.setdefault(f"ADMINVMS_SIM_{_name}_SECONDS", "0")
os.environ.setdefault("ADMINVMS_POLL_INTERVAL", "0.2")
# Tests choose their backends themselves, whatever engines this machine runs.
os.environ.setdefault("ADMINVMS_BACKENDS", "sim")

from .settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Tasks enqueued in a test without a worker run in the test process.
CELERY_TASK_ALWAYS_EAGER = os.environ.get("ADMINVMS_CELERY_EAGER", "1") == "1"
CELERY_TASK_EAGER_PROPAGATES = False
# Static files come from the finders in tests; no collectstatic needed.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
# Every request (live server threads included) closes its connection, so the
# test database can be dropped at the end of the session.
DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405
