"""Only the provider's images run containers (issue 15): whatever else a Docker engine
holds — an image a tenant got onto the host, a public one — never serves a category.
Against the real engine of ``make docker-up``."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import docker
import docker.errors
import pytest

from categories.models import Image, InstanceCategory
from instances.drivers.base import DriverError, ServerSpec
from instances.drivers.docker import DockerDriver
from instances.drivers.registry import reset
from instances.models import Instance

pytestmark = pytest.mark.docker

PROVIDER_IMAGE = "adminvms/busybox:test"
FOREIGN_IMAGE = "tenant/miner:latest"  # the same bytes under a name the provider never published
ENSURE_DOCKER = Path(__file__).resolve().parents[2] / "scripts" / "ensure-docker.sh"


@pytest.fixture(scope="module")
def engine():
    client = docker.from_env(timeout=30)
    try:
        client.images.get(PROVIDER_IMAGE)
    except docker.errors.DockerException:
        subprocess.run(["bash", str(ENSURE_DOCKER)], check=True, capture_output=True, timeout=600)
    client.images.get(PROVIDER_IMAGE).tag(FOREIGN_IMAGE)
    yield client
    client.images.remove(FOREIGN_IMAGE, noprune=True)
    client.close()


def _ours(engine, instance_id: str) -> list:
    return engine.containers.list(all=True, filters={"label": f"adminvms.instance={instance_id}"})


def test_the_driver_runs_no_image_outside_the_providers_prefixes(engine, settings):
    settings.ADMINVMS = {**settings.ADMINVMS, "DOCKER_IMAGE_PREFIXES": ["adminvms/"]}
    instance_id = str(uuid.uuid4())
    spec = ServerSpec(
        instance_id=instance_id, name="miner", kind="container", project=f"dkt-{uuid.uuid4().hex[:6]}",
        project_backend_id="", category="cache", managed=True, flavor=None, image=FOREIGN_IMAGE,
        image_name="miner", network_placement="management",
    )  # fmt: skip
    with pytest.raises(DriverError, match="not one of the provider's"):
        DockerDriver().create(spec)
    assert _ours(engine, instance_id) == []


@pytest.fixture
def on_docker(demo, settings, engine):
    settings.ADMINVMS = {**settings.ADMINVMS, "BACKENDS": ["sim", "docker"], "DOCKER_IMAGE_PREFIXES": ["adminvms/"]}
    reset()
    cache = demo.categories["cache"]
    InstanceCategory.objects.filter(pk=cache.pk).update(backend="docker")
    yield InstanceCategory.objects.get(pk=cache.pk)
    reset()


def test_a_foreign_image_is_refused_at_the_request(demo, api, on_docker, engine):
    """The attack: an image row whose reference is a non-provider image on the engine."""
    foreign = Image.objects.create(name="miner", kind="container", backend_id=FOREIGN_IMAGE)
    foreign.categories.set([on_docker])
    response = api(demo.admin).post(
        "/api/v1/instances/", {"name": "c1", "category": "cache", "project": "acme", "image": str(foreign.pk)},
        format="json",
    )  # fmt: skip
    assert response.status_code == 400, response.content
    assert response.json()["field"] == "image"
    assert "not one of the provider's" in response.json()["detail"]
    assert not Instance.objects.exists()
