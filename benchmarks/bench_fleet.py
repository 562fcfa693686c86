"""Benchmarks of the fleet: a launch from the spare pool against a cold launch, and a heal.

Run by ``make bench`` after ``bench_api.py``. Uses a throw-away PostgreSQL database
(``adminvms_bench_fleet``, or BENCH_FLEET_DATABASE_URL) and runs every action in this process
(Celery's eager mode), so a figure is the service's own time from the request to ACTIVE, polled
every 50 ms. On the sim, a boot takes ``SIM_BOOT_SECONDS`` (2 s here): its figures show what the
pool saves of a boot, not a real cloud's. On the Docker engine (when one answers and the test
images exist), they are real containers. Cold and pool launches alternate, so both see the same
machine; compare rows of the same run.
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
    "DATABASE_URL",
    os.environ.get("BENCH_FLEET_DATABASE_URL", "postgres://postgres:postgres@127.0.0.1:5432/adminvms_bench_fleet"),
)
os.environ["ADMINVMS_CELERY_EAGER"] = "1"
os.environ["ADMINVMS_SIM_BOOT_SECONDS"] = "2"
os.environ["ADMINVMS_POLL_INTERVAL"] = "0.05"
os.environ["ADMINVMS_HEALTH_CHECK_RETRY"] = "0.05"
# Heal after heal of one appliance would open the circuit breaker (rightly): not what is measured.
os.environ["ADMINVMS_HEAL_BREAKER_MIN"] = "1000"
os.environ["ADMINVMS_BUILD_RATE_LIMIT"] = "1000"
# The fleet tests' appliance (tests/fleet_images.py): httpd in the background, so killing it leaves
# the container running with an appliance that no longer answers.
DOCKER_IMAGE = "adminvms/fleet-appliance:1"


def _docker_ready() -> bool:
    """Whether an engine answers with the test images (``make test`` builds them); makes the fleet image."""
    if os.environ.get("BENCH_DOCKER") == "0":
        return False
    try:
        import docker

        from tests.fleet_images import fleet_images

        fleet_images(docker.from_env(timeout=30))
        return True
    except Exception:
        return False


DOCKER = _docker_ready()
os.environ["ADMINVMS_BACKENDS"] = "sim,docker" if DOCKER else "sim"
os.environ["DJANGO_SETTINGS_MODULE"] = "adminvms_dashboard.settings_test"

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test.utils import setup_databases, teardown_databases  # noqa: E402

ROWS: list[tuple[str, str, str]] = []
ROUNDS = 5


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def category_for(backend: str):
    from categories.models import Image, InstanceCategory

    vsa = InstanceCategory.objects.get(slug="vsa")
    image = Image.objects.create(
        name=f"bench-{backend}-{uuid.uuid4().hex[:6]}",
        kind="container" if backend == "docker" else "vm",
        backend_id=DOCKER_IMAGE if backend == "docker" else "",
    )
    category = InstanceCategory.objects.create(
        slug=f"bench-{backend}",
        name=f"Bench appliance ({backend})",
        kind=image.kind,
        management="appliance",
        network_placement="both",
        backend=backend,
        gui_port=8080,
        health_check_port=8080,
        health_check_path="/",
        health_check_threshold=1,
        health_check_grace=0,
        auto_heal=True,
        default_flavor=vsa.default_flavor,
        default_image=image,
    )
    return category


def launch_seconds(user, project, category) -> tuple[float, object]:
    from instances import services

    start = time.perf_counter()
    [instance] = services.instance_launch(user=user, name="bench", project=project, category=category)
    instance.refresh_from_db()
    assert instance.status == "ACTIVE", (instance.status, instance.fault)
    return time.perf_counter() - start, instance


def terminate(user, instance) -> None:
    from instances import services

    services.instance_act(user=user, instance=instance, operation="terminate")


def pool_ready(category, size: int) -> None:
    from instances import services
    from instances.models import Instance

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        services.fleet_run()
        ready = Instance.objects.filter(is_spare=True, category=category, status="ACTIVE", task_state="").count()
        if ready >= size:
            return
        time.sleep(0.05)
    raise RuntimeError("the spare pool did not fill within 120 s")


def bench_backend(backend: str, admin, project) -> None:
    from instances import services
    from instances.models import Instance

    category = category_for(backend)
    cold, pooled = [], []
    for _ in range(ROUNDS):
        category.spare_pool_size = 0
        category.save()
        seconds, instance = launch_seconds(admin, project, category)
        cold.append(seconds)
        terminate(admin, instance)
        category.spare_pool_size = 1
        category.save()
        pool_ready(category, 1)
        seconds, instance = launch_seconds(admin, project, category)
        assert instance.actions.filter(params__from_pool=True).exists()
        pooled.append(seconds)
        terminate(admin, instance)
    label = f"{backend} (boot {settings.ADMINVMS['SIM_BOOT_SECONDS']:.0f} s)" if backend == "sim" else backend
    ROWS.append((f"launch to ACTIVE, cold, {label}", f"{median_ms(cold):8.0f} ms", f"{ROUNDS} launches"))
    ROWS.append(
        (
            f"launch to ACTIVE, from the pool, {label}",
            f"{median_ms(pooled):8.0f} ms",
            f"{statistics.median(cold) / statistics.median(pooled):.1f}x faster than cold",
        )
    )
    category.spare_pool_size = 0
    category.save()
    services.fleet_run()  # retires the spare left

    # A heal: the appliance stops answering; probe, then the fleet pass replaces it.
    heals = []
    for _ in range(3):
        _, instance = launch_seconds(admin, project, category)
        kill(backend, instance)
        start = time.perf_counter()
        services.health_check(backends=[backend])
        services.fleet_run()
        instance = Instance.objects.get(pk=instance.pk)
        assert instance.generation == 1 and instance.status == "ACTIVE", (instance.generation, instance.fault)
        heals.append(time.perf_counter() - start)
        terminate(admin, instance)
    ROWS.append((f"heal: probe, replace, delete old, {label}", f"{median_ms(heals):8.0f} ms", "3 heals"))


def kill(backend: str, instance) -> None:
    if backend == "sim":
        from instances.drivers.sim.models import SimServer

        SimServer.objects.filter(pk=instance.backend_id).update(answers_probes=False)
        return
    import docker

    docker.from_env().containers.get(instance.backend_id).exec_run(["killall", "httpd"])


def main() -> None:
    from django.contrib.auth import get_user_model

    from tenancy.models import Project

    call_command("seed_demo", quiet=True)
    admin = get_user_model().objects.get(username="admin")
    acme = Project.objects.get(slug="acme")
    bench_backend("sim", admin, acme)
    if DOCKER:
        bench_backend("docker", admin, acme)
    else:
        ROWS.append(("docker", "skipped", f"no engine or no image {DOCKER_IMAGE} (make test builds it)"))


if __name__ == "__main__":
    old = setup_databases(verbosity=0, interactive=False)
    try:
        main()
    finally:
        teardown_databases(old, verbosity=0)
    width = max(len(r[0]) for r in ROWS)
    print(f"\n{'fleet benchmark':<{width}}  {'median':>11}  notes")
    print(f"{'-' * width}  {'-' * 11}  {'-' * 24}")
    for name, value, extra in ROWS:
        print(f"{name:<{width}}  {value:>11}  {extra}")
