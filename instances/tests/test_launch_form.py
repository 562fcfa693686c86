"""The launch form offers only the images the chosen category may boot in the chosen project,
and htmx swaps that offer when the category or the project changes (issue 12)."""

from __future__ import annotations

import re

import pytest

from categories.models import Image
from categories.selectors import category_default_image, image_refusal, images_for
from instances.models import Instance

HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def extra_images(demo):
    """Beyond the demo's image per category: a generic VM image (no category), each project's own
    image, a VM image of the hidden cache category alone, one it shares with vsa, an inactive one."""
    images = {
        "generic-vm": Image.objects.create(name="generic-vm", kind="vm", backend_id="generic-vm"),
        "acme-golden": Image.objects.create(name="acme-golden", kind="vm", project=demo.acme),
        "globex-golden": Image.objects.create(name="globex-golden", kind="vm", project=demo.globex),
        "cache-vm": Image.objects.create(name="cache-vm", kind="vm"),
        "vsa-cache": Image.objects.create(name="vsa-cache", kind="vm"),
        "old-vsa": Image.objects.create(name="old-vsa", kind="vm", is_active=False),
    }
    images["cache-vm"].categories.set([demo.categories["cache"]])
    images["vsa-cache"].categories.set([demo.categories["vsa"], demo.categories["cache"]])
    images["old-vsa"].categories.set([demo.categories["vsa"]])
    return images


def image_options(body: str) -> dict[str, str]:
    """The image select's options: label → value (the empty value is the category's default)."""
    select = re.search(r'<select name="image"[^>]*>(.*?)</select>', body, re.S)
    assert select, body
    return {label: value for value, label in re.findall(r'<option value="([^"]*)"[^>]*>([^<]*)</option>', select[1])}


def offered(client, **params) -> dict[str, str]:
    response = client.get("/launch/", params, **HX)
    assert response.status_code == 200, response.content
    return image_options(response.content.decode())


def test_the_selector_is_image_refusal_over_what_the_user_sees(demo, extra_images):
    for user in (demo.alice, demo.bob, demo.admin):
        for category in demo.categories.values():
            for project in (None, demo.acme, demo.globex):
                expected = {i.name for i in Image.objects.visible_to(user) if not image_refusal(category, i, project)}
                assert {i.name for i in images_for(user, category, project)} == expected, (user, category, project)


def test_the_selector_reads_a_bounded_number_of_rows(demo, extra_images, django_assert_max_num_queries):
    for n in range(30):
        Image.objects.create(name=f"bulk-{n}", kind="vm").categories.set([demo.categories["vsa"]])
    with django_assert_max_num_queries(4):
        names = [i.name for i in images_for(demo.alice, demo.categories["vsa"], demo.acme)]
    assert len(names) == 32, names  # the 30, vsa-appliance and vsa-cache: a generic image boots no appliance


def test_options_for_vsa_and_standard_differ_and_match_the_selector(demo, web, extra_images):
    client = web(demo.alice)
    standard = offered(client, category="standard", project="acme")
    vsa = offered(client, category="vsa", project="acme")
    # The empty choice is the category's default (vsa's: its newest linked image, here vsa-cache).
    assert standard.pop("(default: debian-12)") == ""
    assert vsa.pop("(default: vsa-cache)") == ""
    assert set(standard) == {"acme-golden", "debian-12", "fail-boot", "generic-vm"}
    assert set(vsa) == {"vsa-appliance", "vsa-cache"}  # a generic image boots no appliance (issue 21)
    for slug, options in (("standard", standard), ("vsa", vsa)):
        expected = images_for(demo.alice, demo.categories[slug], demo.acme)
        assert options == {i.name: str(i.pk) for i in expected}


def test_the_first_page_offers_the_preselected_category_and_project(demo, web, extra_images):
    body = web(demo.alice).get("/launch/").content.decode()
    assert set(image_options(body)) == {"(default: debian-12)", "acme-golden", "debian-12", "fail-boot", "generic-vm"}
    body = web(demo.alice).get("/launch/?categories=vsa&category=vsa").content.decode()
    default = category_default_image(demo.categories["vsa"])
    assert set(image_options(body)) == {f"(default: {default.name})", "vsa-appliance", "vsa-cache"}


def test_category_and_project_selects_ask_htmx_for_the_form_without_the_csrf_token(demo, web):
    body = web(demo.admin).get("/launch/?categories=standard&categories=vsa").content.decode()
    for name in ("category", "project"):
        select = re.search(rf'<select name="{name}"[^>]*>', body)[0]
        assert 'hx-get="/launch/?categories=standard&amp;categories=vsa"' in select
        assert 'hx-trigger="change"' in select and 'hx-target="#launch-form"' in select
        assert 'hx-params="not csrfmiddlewaretoken"' in select
    # The re-rendered form keeps the restriction to the categories it was opened for.
    body = web(demo.admin).get("/launch/?categories=standard&categories=vsa&category=vsa", **HX).content.decode()
    assert re.findall(
        r'<option value="([a-z]+)"', re.search(r'<select name="category".*?</select>', body, re.S)[0]
    ) == [
        "standard",
        "vsa",
    ]


def test_a_hidden_categorys_images_are_never_offered_to_members(demo, web, extra_images):
    client = web(demo.alice)
    for category in ("standard", "vsa"):
        options = offered(client, category=category, project="acme")
        assert not {"cache-vm", "cache-redis", "lb-amphora", "old-vsa"} & set(options)
    assert "cache-vm" not in {i.name for i in Image.objects.visible_to(demo.alice)}
    # An image a visible category shares with a hidden one is listed for members (as the image API
    # lists it), and offered for the visible category alone.
    assert "vsa-cache" in offered(client, category="vsa", project="acme")
    assert "vsa-cache" not in offered(client, category="standard", project="acme")
    # The provider admin launches the hidden category and is offered its images.
    assert {"cache-redis"} <= set(offered(web(demo.admin), category="cache", project="acme"))


def test_a_projects_own_image_is_offered_in_that_project_and_user_categories_only(demo, web, extra_images):
    assert "globex-golden" not in offered(web(demo.alice), category="standard", project="acme")
    assert "acme-golden" not in offered(web(demo.alice), category="vsa", project="acme")  # managed: provider's only
    assert "globex-golden" in offered(web(demo.bob), category="standard", project="globex")
    assert "acme-golden" not in offered(web(demo.bob), category="standard", project="globex")
    admin = web(demo.admin)
    assert {"acme-golden", "globex-golden"} & set(offered(admin, category="standard", project="acme")) == {
        "acme-golden"
    }
    assert {"acme-golden", "globex-golden"} & set(offered(admin, category="standard", project="globex")) == {
        "globex-golden"
    }
    assert not {"acme-golden", "globex-golden"} & set(offered(admin, category="standard", project=""))


@pytest.mark.parametrize(
    "params",
    [
        {"category": "cache"},  # hidden from members
        {"category": "lb"},  # visible, but members may not launch it
        {"category": "no-such-category"},
        {"category": "x" * 5000},
        {"category": "\x00"},
        {"category": "standard", "project": "acme\x00"},
        {"category": "standard", "categories": "standard\x00"},
        {"category": "standard", "project": "globex"},  # another project
        {"category": "vsa", "categories": "standard"},  # outside the form's categories
    ],
)
def test_the_htmx_form_refuses_what_the_user_may_not_launch(demo, web, params):
    response = web(demo.alice).get("/launch/", params, **HX)
    assert response.status_code == 404
    assert "<option" not in response.content.decode()


def test_readers_and_anonymous_get_no_options(demo, web):
    assert web(demo.rita).get("/launch/", {"category": "standard"}, **HX).status_code == 403
    assert web(None).get("/launch/", {"category": "standard"}, **HX).status_code == 302


def test_an_offered_image_launches(demo, web, extra_images, run_tasks):
    with run_tasks():
        response = web(demo.alice).post(
            "/launch/",
            {
                "name": "golden-1",
                "project": "acme",
                "category": "standard",
                "image": extra_images["acme-golden"].pk,
                "count": 1,
            },
        )
    assert response.status_code == 302, response.content.decode()
    instance = Instance.objects.get(name="golden-1")
    assert instance.image == extra_images["acme-golden"]
    with run_tasks():
        response = web(demo.alice).post(
            "/launch/",
            {
                "name": "store-g",
                "project": "acme",
                "category": "vsa",
                "image": demo.images["vsa-appliance"].pk,
                "count": 1,
            },
        )
    assert response.status_code == 302, response.content.decode()
    assert Instance.objects.get(name="store-g").image == demo.images["vsa-appliance"]


@pytest.mark.parametrize(
    "image", ["debian-12", "acme-golden", "cache-vm", "globex-golden", "old-vsa", "lb-amphora", "generic-vm"]
)
def test_an_image_not_offered_is_refused_by_the_form_and_writes_nothing(demo, web, extra_images, image):
    pk = (extra_images.get(image) or demo.images[image]).pk
    response = web(demo.alice).post(
        "/launch/", {"name": "wrong", "project": "acme", "category": "vsa", "image": pk, "count": 1}
    )
    assert response.status_code == 200
    assert 'data-field="image"' in response.content.decode()
    assert not Instance.objects.filter(name="wrong").exists()


@pytest.mark.parametrize("field", ["project", "category", "flavor", "image"])
def test_a_nul_character_is_bad_input_not_a_database_error(demo, web, field):
    data = {"name": "nul", "project": "acme", "category": "standard", "count": 1, field: "a\x00b"}
    response = web(demo.alice).post("/launch/", data)
    assert response.status_code == 200
    assert f'data-field="{field}"' in response.content.decode()
    assert web(demo.alice).get("/launch/", {"category": "a\x00b", "categories": "\x00"}).status_code == 200
