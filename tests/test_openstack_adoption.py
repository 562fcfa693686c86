"""Adoption and Cinder's volumes on the local OpenStack control plane.

Legacy VPN servers of the service project (by the ``adminvms-legacy=vpn`` metadata or the ``-vpn`` name
suffix) become locked, stamped instances of the provider-managed ``vpn`` category; a tenant's own server
dressed the same is left alone. Volumes are mirrored with their categories for every role."""

from __future__ import annotations

import uuid

import openstack.exceptions
import pytest

from categories.models import Image, Volume
from instances import services
from instances.models import Instance
from tests.factories import CategoryFactory

from . import test_openstack
from .test_openstack import _cloud

# The driver tests' fixtures: the control plane's clouds.yaml, the service account, the demo on OpenStack.
clouds_file, nova_admin, on_openstack = (
    test_openstack.clouds_file,
    test_openstack.nova_admin,
    test_openstack.on_openstack,
)

pytestmark = [pytest.mark.openstack]


@pytest.fixture
def legacy_servers(nova_admin):
    """``boot(conn, name, network, **metadata)`` → an ACTIVE server adminvms did not make; all deleted afterwards."""
    made = []
    image = nova_admin.image.find_image("debian-12")
    flavor = nova_admin.compute.find_flavor("m1.tiny")

    def boot(conn, name: str, network: str, **metadata):
        net = conn.network.find_network(network)
        server = conn.compute.create_server(
            name=name, image_id=image.id, flavor_id=flavor.id, networks=[{"uuid": net.id}], metadata=metadata
        )
        made.append(server)
        return conn.compute.wait_for_server(server, wait=90)

    yield boot
    for server in made:
        nova_admin.compute.delete_server(server.id, ignore_missing=True)
    for server in made:
        nova_admin.compute.wait_for_delete(server, wait=90)


def test_legacy_vpn_servers_are_adopted_locked_and_stamped_and_a_tenants_lookalike_is_not(
    on_openstack,
    legacy_servers,
    nova_admin,
    api,
):
    demo = on_openstack
    vpn = CategoryFactory(slug="vpn", management="provider", kind="vm", backend="openstack", user_visible=True,
                          user_operations=[])  # fmt: skip
    tag = uuid.uuid4().hex[:6]
    by_metadata = legacy_servers(nova_admin, f"gw-{tag}", "management",
                                 **{"adminvms-legacy": "vpn", "adminvms-project": "acme"})  # fmt: skip
    by_name = legacy_servers(nova_admin, f"globex-{tag}-vpn", "management", **{"adminvms-project": "globex"})
    plain = legacy_servers(nova_admin, f"db-{tag}", "management")
    alice = _cloud("adminvms-acme")
    sneaky = legacy_servers(alice, f"sneaky-{tag}-vpn", "acme-net",
                            **{"adminvms-legacy": "vpn", "adminvms-project": "acme"})  # fmt: skip
    rules = services.rules_named("vpn")

    plan = {c.server.backend_id: c for c in services.adoption_plan(backend="openstack", rules=rules)}
    assert (plan[by_metadata.id].verdict, plan[by_metadata.id].rule) == ("adopt", "vpn-legacy-metadata")
    assert plan[by_metadata.id].project == demo.acme
    assert (plan[by_name.id].verdict, plan[by_name.id].rule, plan[by_name.id].project) == (
        "adopt", "vpn-name-suffix", demo.globex)  # fmt: skip
    assert plan[plain.id].verdict == "unmatched"
    assert plan[sneaky.id].verdict == "unmatched"
    assert "tenant's own project" in plan[sneaky.id].why
    assert plan[by_metadata.id].server.flavor == "m1.tiny" and plan[by_metadata.id].server.image_name == "debian-12"

    mine = {by_metadata.id, by_name.id, sneaky.id}
    applied = {c.server.backend_id: c for c in services.adoption_apply(backend="openstack", rules=rules, only=mine)}
    assert applied[by_metadata.id].verdict == applied[by_name.id].verdict == "adopted"
    assert applied[sneaky.id].verdict == "unmatched"
    rows = {i.backend_id: i for i in Instance.objects.filter(category=vpn)}
    assert set(rows) == {by_metadata.id, by_name.id}
    gw = rows[by_metadata.id]
    assert (gw.project, gw.status, gw.flavor.name, gw.image.name) == (demo.acme, "ACTIVE", "m1.tiny", "debian-12")
    assert gw.host and gw.addresses and gw.events.get().event == "adopted"

    # Stamped as a create stamps, and locked.
    server = nova_admin.compute.get_server(by_metadata.id)
    assert {"adminvms", f"adminvms-instance:{gw.pk}"} <= set(server.tags)
    assert server.metadata["adminvms_instance"] == str(gw.pk) and server.is_locked
    untouched = nova_admin.compute.get_server(sneaky.id)
    assert "adminvms" not in (untouched.tags or []) and not untouched.is_locked

    # A second run changes nothing.
    again = {c.server.backend_id for c in services.adoption_plan(backend="openstack", rules=rules)}
    assert not again & {by_metadata.id, by_name.id}
    assert services.adoption_apply(backend="openstack", rules=rules, only={by_metadata.id})[-1].verdict == "gone"
    assert Instance.objects.filter(category=vpn).count() == 2

    # From now on the category decides: the member may not terminate it here, and Nova refuses tenants too.
    assert api(demo.alice).delete(f"/api/v1/instances/{gw.pk}/").status_code == 403
    with pytest.raises(openstack.exceptions.NotFoundException):
        alice.compute.delete_server(by_metadata.id, ignore_missing=False)
    with pytest.raises(openstack.exceptions.ConflictException):
        _cloud("adminvms-member").compute.delete_server(by_metadata.id, ignore_missing=False)
    [run] = services.instances_reconcile(backends=["openstack"])
    gw.refresh_from_db()
    assert run.error == "" and gw.status == "ACTIVE"


def test_cinder_volumes_sync_with_categories_by_metadata_and_attachment_for_every_role(
    on_openstack, legacy_servers, nova_admin, api
):
    demo = on_openstack
    CategoryFactory(slug="vpn", management="provider", kind="vm", backend="openstack", user_visible=True,
                    user_operations=[])  # fmt: skip
    tag = uuid.uuid4().hex[:6]
    gateway = legacy_servers(nova_admin, f"gw-{tag}-vpn", "management", **{"adminvms-project": "acme"})
    services.adoption_apply(backend="openstack", rules=services.rules_named("vpn"), only={gateway.id})
    alice = _cloud("adminvms-acme")
    made = []
    try:
        forged = alice.block_storage.create_volume(name=f"alice-{tag}", size=1, metadata={"adminvms:category": "lb"})
        offered = nova_admin.block_storage.create_volume(name=f"vsa-{tag}", size=1,
                                                         metadata={"adminvms:category": "vsa"})  # fmt: skip
        state = nova_admin.block_storage.create_volume(name=f"state-{tag}", size=1)
        made += [(alice, forged), (nova_admin, offered), (nova_admin, state)]
        for conn, volume in made:
            conn.block_storage.wait_for_status(volume, status="available", wait=60)
        attachment = nova_admin.compute.create_volume_attachment(gateway.id, volume_id=state.id)
        nova_admin.block_storage.wait_for_status(state, status="in-use", wait=60)

        counts = services.volumes_sync(backend="openstack")
        assert counts["volumes"] >= 3
        rows = {v.backend_id: v for v in Volume.objects.filter(backend="openstack").prefetch_related("categories")}
        slugs = {b: {c.slug for c in v.categories.all()} for b, v in rows.items()}
        assert slugs[forged.id] == set() and rows[forged.id].project == demo.acme  # her metadata decides nothing
        assert slugs[offered.id] == {"vsa"} and rows[offered.id].project is None
        assert slugs[state.id] == {"vpn"} and rows[state.id].project == demo.acme
        assert rows[state.id].attachments == [gateway.id] and rows[state.id].status == "in-use"

        def listed(user, **params):
            names = {v["name"] for v in api(user).get("/api/v1/volumes/", params).json()["results"]}
            return names & {f"alice-{tag}", f"vsa-{tag}", f"state-{tag}"}

        everything = {f"alice-{tag}", f"vsa-{tag}", f"state-{tag}"}
        assert listed(demo.admin) == everything
        # The provider's unattached volume is the provider's alone (issue 21), whatever it is offered for.
        assert listed(demo.alice) == listed(demo.rita) == {f"alice-{tag}", f"state-{tag}"}
        assert listed(demo.bob) == listed(demo.gina) == set()
        assert listed(demo.alice, category="vpn") == {f"state-{tag}"}
        assert listed(demo.bob, category="vpn") == set()

        # The provider assigns a category here: Cinder's metadata follows, and the next sync agrees.
        spare = Volume.objects.get(backend_id=offered.id)
        answer = api(demo.admin).put(f"/api/v1/volumes/{spare.pk}/categories/", {"categories": ["lb", "vsa"]},
                                     format="json")  # fmt: skip
        assert answer.status_code == 200 and answer.json()["backend_note"] == "", answer.content
        assert nova_admin.block_storage.get_volume(offered.id).metadata["adminvms:category"] == "lb,vsa"
        services.volumes_sync(backend="openstack")
        assert {c.slug for c in spare.categories.all()} == {"lb", "vsa"}

        nova_admin.compute.delete_volume_attachment(gateway.id, attachment.volume_id)
        nova_admin.block_storage.wait_for_status(state, status="available", wait=60)
        nova_admin.block_storage.delete_volume(offered)
        nova_admin.block_storage.wait_for_delete(offered, wait=60)
        services.volumes_sync(backend="openstack")
        assert Volume.objects.get(backend_id=offered.id).status == "gone"
        assert not Volume.objects.get(backend_id=state.id).categories.exists()
    finally:
        for conn, volume in made:
            conn.block_storage.delete_volume(volume, ignore_missing=True)


def test_an_images_categories_set_here_are_written_into_glance_and_the_next_sync_agrees(on_openstack, nova_admin, api):
    demo = on_openstack
    glance = nova_admin.image.find_image("lb-amphora")
    image = Image.objects.get(backend_id=glance.id)
    assert image.backend == "openstack" and [c.slug for c in image.categories.all()] == ["lb"]
    url = f"/api/v1/images/{image.pk}/categories/"
    try:
        answer = api(demo.admin).put(url, {"categories": ["lb", "vsa"]}, format="json")
        assert answer.status_code == 200 and answer.json()["backend_note"] == "", answer.content
        tags = set(nova_admin.image.get_image(glance.id).tags)
        assert {"adminvms:category=lb", "adminvms:category=vsa"} <= tags
        services.catalog_sync(backend="openstack")
        assert {c.slug for c in image.categories.all()} == {"lb", "vsa"}
    finally:
        api(demo.admin).put(url, {"categories": ["lb"]}, format="json")
    assert "adminvms:category=vsa" not in nova_admin.image.get_image(glance.id).tags
