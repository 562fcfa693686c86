"""The console's and the portal's forms submitted as their pages render them (issue 28): what the page shows
saves unchanged with no error, and a change lands. ``tests.rendered_forms`` reads each form as a browser
would submit it; nothing here writes its own POST data but the one field a person changes."""

from __future__ import annotations

import re

from categories.models import Flavor, Image, Volume
from instances.models import Instance, Rollout
from tenancy.models import Ec2Credential
from tests.rendered_forms import rendered_form, rendered_forms


def _post_each(client, page_url: str, action_prefix: str) -> list[tuple[str, dict]]:
    """Every form of the page whose action starts with ``action_prefix``, with its rendered data."""
    html = client.get(page_url).content.decode()
    return [
        (attrs["action"], data)
        for attrs, data in rendered_forms(html)
        if attrs.get("action", "").startswith(action_prefix)
    ]


def _categories(item) -> set[str]:
    return set(item.categories.values_list("slug", flat=True))


def test_image_category_forms_save_as_shown_and_a_choice_lands(demo, web):
    client = web(demo.admin)
    before = {i.pk: _categories(i) for i in Image.objects.all()}
    forms = _post_each(client, "/console/images/", "/console/images/")
    assert len(forms) == Image.objects.filter(project__isnull=True).count()
    for action, data in forms:
        answer = client.post(action, data, follow=True)
        assert answer.status_code == 200 and "alert-danger" not in answer.content.decode(), action
    assert {i.pk: _categories(i) for i in Image.objects.all()} == before
    image = demo.images["vsa-appliance"]
    action, data = next((a, d) for a, d in forms if str(image.pk) in a)
    data["categories"] = [*data.get("categories", []), "lb"]
    client.post(action, data)
    assert _categories(image) == {"vsa", "lb"}


def test_volume_category_forms_save_as_shown(demo, web):
    client = web(demo.admin)
    before = {v.pk: _categories(v) for v in Volume.objects.all()}
    forms = _post_each(client, "/console/volumes/", "/console/volumes/")
    assert forms
    for action, data in forms:
        answer = client.post(action, data, follow=True)
        assert answer.status_code == 200 and "alert-danger" not in answer.content.decode(), action
    assert {v.pk: _categories(v) for v in Volume.objects.all()} == before


def test_the_launch_form_as_shown_launches_the_defaults_it_names(demo, web, run_tasks):
    client = web(demo.alice)
    page = client.get("/launch/", {"category": "vsa", "project": "acme"}).content.decode()
    data = rendered_form(page, "launch-form")
    images = re.search(r'<select name="image".*?</select>', page, re.S)[0]
    default_image = re.search(r'<option value="" selected>\(default: ([^)]+)\)</option>', images)[1]
    data["name"] = ["store-1"]  # the one field a person must fill
    with run_tasks():
        answer = client.post("/launch/", data)
    assert answer.status_code == 302, answer.content.decode()
    instance = Instance.objects.get(name="store-1")
    assert (instance.category.slug, instance.project.slug, instance.image.name) == ("vsa", "acme", default_image)
    assert instance.flavor == demo.categories["vsa"].default_flavor


def test_the_flavor_form_creates_what_is_typed(demo, web):
    client = web(demo.admin)
    data = rendered_form(client.get("/console/flavors/").content.decode(), "flavor-form")
    assert set(data) >= {"name", "vcpus", "ram_mb", "disk_gb"}
    data.update(name=["m2.medium"], vcpus=["2"], ram_mb=["4096"], disk_gb=["40"])
    assert client.post("/console/flavors/", data).status_code == 302
    assert Flavor.objects.filter(name="m2.medium", vcpus=2, ram_mb=4096, disk_gb=40).exists()


def test_the_rollout_form_as_shown_for_a_category_starts_its_rollout(demo, web):
    Image.objects.create(name="vsa-2.0", kind="vm", tags=["vsa"])
    client = web(demo.admin)
    data = rendered_form(client.get("/console/rollouts/").content.decode(), "rollout-form")
    data["category"] = ["vsa"]
    answer = client.post("/console/rollouts/", data, follow=True)
    assert answer.status_code == 200 and "alert-danger" not in answer.content.decode()
    rollout = Rollout.objects.get(category__slug="vsa")
    assert (rollout.image.name, rollout.batch_size, rollout.pause_seconds) == ("vsa-2.0", 1, 0)


def test_the_access_key_form_as_shown_makes_a_key(demo, web):
    client = web(demo.alice)
    data = rendered_form(client.get("/portal/keys/").content.decode(), "access-key-form")
    answer = client.post("/portal/keys/", data, follow=True)
    assert answer.status_code == 200 and "alert-danger" not in answer.content.decode()
    assert Ec2Credential.objects.filter(user=demo.alice).count() == 1


def test_the_adoption_preview_as_shown_answers_its_plan(demo, web):
    client = web(demo.admin)
    data = rendered_form(client.get("/console/adoption/").content.decode(), "adoption-preview")
    answer = client.get("/console/adoption/", data)
    assert answer.status_code == 200
    body = answer.content.decode()
    assert 'id="adoption-plan"' in body and "alert-danger" not in body
