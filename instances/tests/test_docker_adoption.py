"""Adoption on the real Docker Engine: legacy containers named ``*-vpn`` from a VPN image become
instances of the provider-managed ``vpn`` category, untouched, and obey the policy afterwards."""

from __future__ import annotations

import contextlib
import uuid

import docker.errors
import pytest

from categories.models import Volume
from instances import services
from instances.choices import Status
from instances.models import Instance
from tests.factories import CategoryFactory

from . import test_docker_driver
from .test_docker_driver import BUSYBOX

# The driver tests' fixture: the engine's client, the engine and its test images brought up when missing.
engine = test_docker_driver.engine

pytestmark = pytest.mark.docker


@pytest.fixture
def legacy(engine):
    """``legacy(name, image, **labels)`` → a running container adminvms did not make; removed afterwards."""
    made = []
    tag = f"legacy-vpn-{uuid.uuid4().hex[:8]}"
    engine.images.get(BUSYBOX).tag(tag, "1")

    def run(name: str, image: str = f"{tag}:1", **labels: str):
        container = engine.containers.run(image, name=name, labels=labels, detach=True)
        made.append(container)
        return container

    yield run
    for container in made:
        with contextlib.suppress(docker.errors.NotFound):  # terminated by the test already
            container.remove(force=True)
    engine.images.remove(f"{tag}:1")


def test_legacy_containers_are_adopted_by_the_vpn_rules_and_then_obey_the_policy(
    demo,
    legacy,
    engine,
    settings,
    api,
    run_tasks,
):
    settings.ADMINVMS = {**settings.ADMINVMS, "BACKENDS": ["sim", "docker"]}
    vpn = CategoryFactory(slug="vpn", management="provider", kind="container", backend="docker", user_visible=True,
                          user_operations=[])  # fmt: skip
    suffix = uuid.uuid4().hex[:6]
    wanted = legacy(f"acme{suffix}-vpn", **{"adminvms.project": "acme", "vendor": "legacy"})
    other_image = legacy(f"other{suffix}-vpn", image=BUSYBOX, **{"adminvms.project": "acme"})
    no_project = legacy(f"lost{suffix}-vpn")
    rules = services.rules_named("vpn")

    plan = {c.server.backend_id: c for c in services.adoption_plan(backend="docker", rules=rules)}
    assert plan[wanted.id].verdict == "adopt" and plan[wanted.id].project == demo.acme
    assert plan[wanted.id].category == vpn and plan[wanted.id].rule == "vpn-container"
    assert plan[other_image.id].verdict == "unmatched" and "needs image *vpn*" in plan[other_image.id].why
    assert plan[no_project.id].verdict == "unmatched" and "names no project" in plan[no_project.id].why
    assert not Instance.objects.exists()

    # Two rules of equal priority for different categories: ambiguous, left alone.
    CategoryFactory(slug="gateway", management="provider", kind="container", backend="docker")
    rival = services.rules_from([
        {"name": "as-vpn", "category": "vpn", "backend": "docker", "name_pattern": "*-vpn",
         "project_key": "adminvms.project"},
        {"name": "as-gateway", "category": "gateway", "backend": "docker", "metadata_key": "vendor",
         "project_key": "adminvms.project"},
    ])  # fmt: skip
    torn = {c.server.backend_id: c for c in services.adoption_apply(backend="docker", rules=rival, only={wanted.id})}
    assert torn[wanted.id].verdict == "ambiguous" and "as-gateway, as-vpn" in torn[wanted.id].why
    assert not Instance.objects.exists()

    applied = {c.server.backend_id: c for c in services.adoption_apply(backend="docker", rules=rules, only={wanted.id})}
    assert applied[wanted.id].verdict == "adopted"
    instance = Instance.objects.get()
    assert (instance.backend, instance.backend_id, instance.status) == ("docker", wanted.id, Status.ACTIVE)
    assert instance.name == f"acme{suffix}-vpn" and instance.metadata["vendor"] == "legacy"
    assert instance.events.get().event == "adopted"
    wanted.reload()
    assert wanted.status == "running"  # adoption leaves the container running, untouched

    # A second run adopts nothing new, and reconcile keeps the adopted row as it is.
    again = {c.server.backend_id for c in services.adoption_plan(backend="docker", rules=rules)}
    assert wanted.id not in again
    services.instances_reconcile()
    instance.refresh_from_db()
    assert instance.status == Status.ACTIVE

    # From now on the category decides: a member may not terminate a provider-managed VPN.
    assert api(demo.alice).delete(f"/api/v1/instances/{instance.pk}/").status_code == 403
    with run_tasks():
        assert api(demo.admin).delete(f"/api/v1/instances/{instance.pk}/").status_code == 202
    instance.refresh_from_db()
    assert instance.status == Status.DELETED
    assert wanted.id not in {c.id for c in engine.containers.list(all=True)}


def test_docker_volumes_sync_with_their_labels_and_attachments(demo, legacy, engine, settings, api):
    settings.ADMINVMS = {**settings.ADMINVMS, "BACKENDS": ["sim", "docker"]}
    vpn = CategoryFactory(slug="vpn", management="provider", kind="container", backend="docker", user_visible=True,
                          user_operations=[])  # fmt: skip
    suffix = uuid.uuid4().hex[:6]
    labelled = engine.volumes.create(f"vsa-disk-{suffix}", labels={"adminvms.category": "vsa"})
    mounted = engine.volumes.create(f"vpn-state-{suffix}")
    try:
        container = engine.containers.run(
            BUSYBOX, name=f"acme{suffix}-vpn",
            labels={"adminvms.project": "acme"}, volumes={mounted.name: {"bind": "/state", "mode": "rw"}}, detach=True,
        )  # fmt: skip
        try:
            rules = services.rules_from([{"name": "vpn", "category": "vpn", "backend": "docker",
                                          "name_pattern": "*-vpn", "project_key": "adminvms.project"}])  # fmt: skip
            services.adoption_apply(backend="docker", rules=rules, only={container.id})
            counts = services.volumes_sync(backend="docker")
            assert counts["volumes"] >= 2
            rows = {v.name: v for v in Volume.objects.filter(backend="docker")}
            assert {c.slug for c in rows[labelled.name].categories.all()} == {"vsa"}
            assert rows[labelled.name].project is None and rows[labelled.name].status == "available"
            state = rows[mounted.name]
            assert {c.slug for c in state.categories.all()} == {vpn.slug} and state.project == demo.acme
            assert state.status == "in-use" and state.attachments == [container.id]

            def listed(user, **params):
                names = {v["name"] for v in api(user).get("/api/v1/volumes/", params).json()["results"]}
                return names & {mounted.name, labelled.name}

            assert listed(demo.admin) == {mounted.name, labelled.name}
            for member in (demo.alice, demo.rita):  # their project's volume; the provider's unattached one never
                assert listed(member) == {mounted.name}
                assert listed(member, category="vpn") == {mounted.name}
            for outsider in (demo.bob, demo.gina):  # acme's volume never, nor the provider's (issue 21)
                assert listed(outsider) == set()
                assert listed(outsider, category="vpn") == set()
        finally:
            container.remove(force=True)
        assert services.volumes_sync(backend="docker")["gone"] == 0  # still listed by the engine
        mounted.remove()
        services.volumes_sync(backend="docker")
        assert Volume.objects.get(backend="docker", name=mounted.name).status == "gone"
    finally:
        for volume in (labelled, mounted):
            with contextlib.suppress(docker.errors.NotFound):
                volume.remove(force=True)
