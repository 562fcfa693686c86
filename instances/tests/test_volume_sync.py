"""Volumes mirrored from a backend (the simulated cloud here; Docker and Cinder in their own tests):
bulk and idempotent, gone ones marked, categories by metadata, attachment and the provider, rule 7 for every role."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from categories.models import Volume
from instances import services
from instances.drivers.sim.models import SimServer, SimVolume

URL = "/api/v1/volumes/"


@pytest.fixture
def cloud(demo, run_tasks):
    """An appliance and a standard instance of acme on the simulated cloud, and its volumes."""
    with run_tasks():
        [appliance] = services.instance_launch(user=demo.alice, name="store", category=demo.categories["vsa"])
        [web] = services.instance_launch(user=demo.alice, name="web")
    appliance.refresh_from_db()
    web.refresh_from_db()
    volumes = {
        "cache-data": SimVolume.objects.create(name="cache-data", project_ref="service",
                                               metadata={"adminvms:category": "cache"}),
        "store-data": SimVolume.objects.create(name="store-data", project_ref="service",
                                               attached_to=[appliance.backend_id]),
        "alice-forged": SimVolume.objects.create(name="alice-forged", project_ref="acme",
                                                 metadata={"adminvms:category": "lb"}),
        "alice-web": SimVolume.objects.create(name="alice-web", project_ref="acme", attached_to=[web.backend_id]),
        "elsewhere": SimVolume.objects.create(name="elsewhere", project_ref="initech"),
        "spare": SimVolume.objects.create(name="spare", project_ref="service", size_gb=5),
    }  # fmt: skip
    return volumes


def names(api, user, **params) -> set[str]:
    answer = api(user).get(URL, params)
    assert answer.status_code == 200, answer.content
    return {v["name"] for v in answer.json()["results"]} - {"vsa-data", "lb-data", "cache-data-demo"}


def test_sync_mirrors_volumes_with_their_categories_and_projects(demo, cloud, api):
    demo_rows = set(Volume.objects.values_list("name", flat=True))
    counts = services.volumes_sync(backend="sim")
    assert counts == {"volumes": 5, "gone": 0}  # "elsewhere" belongs to a project with no place here
    synced = {v.name: v for v in Volume.objects.filter(backend="sim").prefetch_related("categories")}
    cats = {name: {c.slug for c in v.categories.all()} for name, v in synced.items()}
    assert cats == {
        "cache-data": {"cache"},  # the provider's volume, by its metadata
        "store-data": {"vsa"},  # attached to acme's appliance
        "alice-forged": set(),  # a tenant's own metadata decides nothing (rule 9)
        "alice-web": {"standard"},
        "spare": set(),
    }
    assert synced["store-data"].project == demo.acme and synced["store-data"].status == "in-use"
    assert synced["alice-forged"].project == demo.acme and synced["spare"].project is None
    assert synced["spare"].size_gb == 5

    everything = set(cats)
    hidden = names(api, demo.admin) - demo_rows
    assert hidden >= everything
    for member in (demo.alice, demo.rita):  # the provider's unattached volumes are the provider's alone
        assert names(api, member) & everything == {"store-data", "alice-forged", "alice-web"}
        assert names(api, member, category="vsa") & everything == {"store-data"}
    for outsider in (demo.bob, demo.gina):
        assert names(api, outsider) & everything == set()
        assert names(api, outsider, category="vsa") & everything == set()
    assert api(demo.alice).get(URL, {"category": "cache"}).status_code == 400  # a hidden category is unknown
    assert names(api, demo.admin, category="cache") & everything == {"cache-data"}


def test_sync_is_idempotent_bulk_and_marks_gone_volumes_without_deleting_them(demo, cloud, api):
    services.volumes_sync(backend="sim")
    before = {v.pk: (v.name, v.status) for v in Volume.objects.filter(backend="sim")}
    services.volumes_sync(backend="sim")
    assert {v.pk: (v.name, v.status) for v in Volume.objects.filter(backend="sim")} == before

    with CaptureQueriesContext(connection) as few:
        services.volumes_sync(backend="sim")
    SimVolume.objects.bulk_create([SimVolume(name=f"bulk-{n}", project_ref="service") for n in range(40)])
    with CaptureQueriesContext(connection) as creating:
        services.volumes_sync(backend="sim")
    with CaptureQueriesContext(connection) as many:
        services.volumes_sync(backend="sim")
    assert len(many) == len(few), [q["sql"] for q in many.captured_queries]
    assert len(creating) <= len(few) + 1  # the one bulk insert

    cloud["spare"].delete()
    assert services.volumes_sync(backend="sim")["gone"] == 1
    spare = Volume.objects.get(backend="sim", name="spare")
    assert spare.status == "gone" and spare.gone_at is not None
    assert "spare" not in names(api, demo.alice)
    assert "spare" in {v["name"] for v in api(demo.admin).get(URL, {"status": "gone"}).json()["results"]}


def test_the_providers_own_assignment_survives_a_sync(demo, cloud):
    services.volumes_sync(backend="sim")
    spare = Volume.objects.get(backend="sim", name="spare")
    spare.assigned_categories.set([demo.categories["lb"]])
    services.volumes_sync(backend="sim")
    assert {c.slug for c in spare.categories.all()} == {"lb"}


def test_a_terminated_instance_no_longer_gives_its_category(demo, cloud):
    services.volumes_sync(backend="sim")
    store = SimServer.objects.get(name="store")
    SimVolume.objects.filter(name="store-data").update(attached_to=[])
    services.volumes_sync(backend="sim")
    volume = Volume.objects.get(backend="sim", name="store-data")
    assert not volume.categories.exists() and volume.project is None and volume.status == "available"
    assert store  # the server is untouched


def test_the_provider_sets_and_clears_categories_and_the_backend_metadata_follows(demo, cloud, api, web):
    services.volumes_sync(backend="sim")
    spare = Volume.objects.get(backend="sim", name="spare")
    url = f"/api/v1/volumes/{spare.pk}/categories/"
    answer = api(demo.admin).put(url, {"categories": ["vsa", "lb"]}, format="json")
    assert answer.status_code == 200, answer.content
    assert sorted(answer.json()["categories"]) == ["lb", "vsa"] and answer.json()["backend_note"] == ""
    assert SimVolume.objects.get(name="spare").metadata["adminvms:category"] == "lb,vsa"
    services.volumes_sync(backend="sim")
    assert {c.slug for c in spare.categories.all()} == {"lb", "vsa"}

    # The assignment here rules: metadata changed behind our back does not undo it.
    SimVolume.objects.filter(name="spare").update(metadata={"adminvms:category": "cache"})
    services.volumes_sync(backend="sim")
    assert {c.slug for c in spare.categories.all()} == {"lb", "vsa"}

    assert api(demo.admin).put(url, {"categories": []}, format="json").status_code == 200
    assert "adminvms:category" not in SimVolume.objects.get(name="spare").metadata
    assert not spare.categories.exists()

    # An attached instance's category stays whatever the assignment.
    store = Volume.objects.get(backend="sim", name="store-data")
    api(demo.admin).put(f"/api/v1/volumes/{store.pk}/categories/", {"categories": []}, format="json")
    assert {c.slug for c in store.categories.all()} == {"vsa"}

    # Members may not; a tenant's volume serves no managed category; bad input is a 400.
    assert api(demo.alice).put(url, {"categories": ["vsa"]}, format="json").status_code == 403
    forged = Volume.objects.get(backend="sim", name="alice-forged")
    refused = api(demo.admin).put(f"/api/v1/volumes/{forged.pk}/categories/", {"categories": ["lb"]}, format="json")
    assert refused.status_code == 400 and "categories" in refused.json()
    assert api(demo.admin).put(url, {"categories": ["nope"]}, format="json").status_code == 400
    assert api(demo.admin).put(url, {"categories": "vsa"}, format="json").status_code == 400
    # Refused before anything is looked up: another project's volume and none at all read the same (issue 21).
    for pk in (store.pk, "00000000-0000-0000-0000-000000000000"):
        assert api(demo.bob).put(f"/api/v1/volumes/{pk}/categories/", {"categories": []},
                                 format="json").status_code == 403  # fmt: skip

    # The console does the same.
    done = web(demo.admin).post(f"/console/volumes/{spare.pk}/categories/", {"categories": ["vsa"]})
    assert done.status_code == 302
    assert {c.slug for c in spare.assigned_categories.all()} == {"vsa"}
    assert web(demo.alice).post(f"/console/volumes/{spare.pk}/categories/", {"categories": []}).status_code == 403
    page = web(demo.admin).get("/console/volumes/")
    assert 'data-volume="spare"' in page.content.decode()


def test_the_console_lists_images_and_volumes_without_any_filter(demo, cloud, web):
    """A regression: without a query string the console's image and volume pages listed nothing."""
    services.volumes_sync(backend="sim")
    images = web(demo.admin).get("/console/images/").content.decode()
    assert all(name in images for name in demo.images)
    volumes = web(demo.admin).get("/console/volumes/").content.decode()
    assert 'data-volume="spare"' in volumes and 'data-volume="store-data"' in volumes


def test_the_provider_sets_and_clears_an_images_categories(demo, api, web):
    from categories.models import Image

    image = Image.objects.filter(project__isnull=True, kind="vm").first()
    url = f"/api/v1/images/{image.pk}/categories/"
    answer = api(demo.admin).put(url, {"categories": ["lb"]}, format="json")
    assert answer.status_code == 200 and answer.json()["categories"] == ["lb"], answer.content
    assert answer.json()["backend_note"] == ""  # a row made here: no backend to write to
    assert api(demo.admin).put(url, {"categories": []}, format="json").json()["categories"] == []
    assert api(demo.alice).put(url, {"categories": ["vsa"]}, format="json").status_code == 403
    own = Image.objects.create(name="acme-own", project=demo.acme)
    refused = api(demo.admin).put(f"/api/v1/images/{own.pk}/categories/", {"categories": ["vsa"]}, format="json")
    assert refused.status_code == 400 and not own.categories.exists()
    assert web(demo.admin).post(f"/console/images/{image.pk}/categories/", {"categories": ["vsa"]}).status_code == 302
    assert [c.slug for c in image.categories.all()] == ["vsa"]
    assert 'data-image="acme-own"' in web(demo.admin).get("/console/images/").content.decode()
