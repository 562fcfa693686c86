"""catalog_mirror and the default image: images match by backend id only, a project's private image
carries no category and never becomes a default (issue 15); the default comes from the links."""

from __future__ import annotations

import pytest

from categories.models import Image
from categories.selectors import category_default_image
from categories.services import catalog_mirror, image_update
from tenancy.errors import InvalidInput


def _image(backend_id, name, tags=(), provider=True, owner=""):
    return {
        "backend_id": backend_id, "name": name, "kind": "vm", "tags": list(tags), "min_ram_mb": 0,
        "min_disk_gb": 0, "provider": provider, "owner": owner,
    }  # fmt: skip


def test_images_match_by_backend_id_and_private_ones_stay_private(demo):
    demo.acme.keystone_id = "ks-acme"
    demo.acme.save()
    catalog_mirror(flavors=[], images=[_image("g-1", "vsa-os", ["adminvms:category=vsa", "gold"])], projects={})
    catalog_mirror(
        flavors=[],
        images=[
            _image("g-1", "vsa-os", ["adminvms:category=vsa", "gold"]),
            _image("g-2", "vsa-os", ["adminvms:category=vsa", "gold"], provider=False, owner="ks-acme"),
            _image("g-3", "stray", provider=False, owner="ks-unknown"),
        ],
        projects={},
    )
    provider, private = Image.objects.get(backend_id="g-1"), Image.objects.get(backend_id="g-2")
    assert (provider.project, [c.slug for c in provider.categories.all()], provider.tags) == (None, ["vsa"], ["gold"])
    assert (private.project, list(private.categories.all()), private.tags) == (demo.acme, [], [])
    assert not Image.objects.filter(backend_id="g-3").exists()  # a project we do not know: not mirrored


def test_the_default_image_is_the_newest_linked_provider_image(demo):
    vsa = demo.categories["vsa"]
    vsa.image_tag = ""
    vsa.save()
    Image.objects.update(is_active=False)
    assert category_default_image(vsa) is None
    older = Image.objects.create(name="a", kind="vm")
    older.categories.set([vsa])
    newer = Image.objects.create(name="b", kind="vm")
    newer.categories.set([vsa])
    mine = Image.objects.create(name="c", kind="vm", project=demo.acme)  # a tenant's, newest of all
    mine.categories.set([vsa])
    assert category_default_image(vsa) == newer
    vsa.image_tag = "gold"
    vsa.save()
    tagged = Image.objects.create(name="d", kind="vm", tags=["gold"])
    assert category_default_image(vsa) == tagged


def test_a_projects_image_serves_no_category(demo, api):
    mine = Image.objects.create(name="mine", kind="vm", project=demo.acme)
    response = api(demo.admin).patch("/api/v1/categories/vsa/", {"default_image": str(mine.pk)}, format="json")
    assert response.status_code == 400 and "default_image" in response.json()
    with pytest.raises(InvalidInput) as refused:
        image_update(user=demo.admin, image=mine, categories=[demo.categories["standard"]])
    assert refused.value.field == "categories"
    assert not mine.categories.exists()


def test_a_gui_path_that_climbs_is_400(demo, api):
    for path in ("/../admin", "/a/./b", "/a\\b"):
        response = api(demo.admin).patch("/api/v1/categories/vsa/", {"gui_path": path}, format="json")
        assert response.status_code == 400 and "gui_path" in response.json(), path
