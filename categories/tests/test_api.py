"""The catalog through /api/v1/: categories, allowed flavors, flavors, images, volumes (DESIGN.md §4, rule 7)."""

from __future__ import annotations

import pytest

from categories.models import Flavor, Image, InstanceCategory, Volume
from tests.factories import FlavorFactory, ImageFactory, InstanceFactory

CATEGORIES = "/api/v1/categories/"
ADMIN_ONLY_CATEGORY_FIELDS = {
    "backend",
    "availability_zone",
    "anti_affinity",
    "extra_metadata",
    "image_tag",
    "gui_port",
    "gui_path",
    "health_check_port",
    "health_check_path",
}


def _new_category(**overrides):
    body = {
        "slug": "vpn",
        "name": "VPN gateway",
        "kind": "vm",
        "management": "appliance",
        "user_operations": ["launch", "reboot"],
        "network_placement": "both",
        "default_flavor": "m1.small",
        "allowed_flavors": ["m1.small", "m1.large"],
        "min_ram_mb": 1024,
        "gui_port": 443,
        "extra_metadata": {"service": "vpn"},
    }
    return body | overrides


def _slugs(response):
    assert response.status_code == 200, response.json()
    return {item["slug"] for item in response.json()["results"]}


def _names(response):
    assert response.status_code == 200, response.json()
    return {item["name"] for item in response.json()["results"]}


# --- categories: read --------------------------------------------------------------


def test_admin_lists_every_category_with_admin_fields(demo, api):
    response = api(demo.admin).get(CATEGORIES)
    assert _slugs(response) == {"standard", "lb", "vsa", "cache"}
    vsa = api(demo.admin).get(f"{CATEGORIES}vsa/").json()
    assert vsa["gui_port"] == 8080
    assert vsa["image_tag"] == "vsa"
    assert "backend" in vsa and "extra_metadata" in vsa
    assert set(vsa["allowed_flavors"]) == {"m1.small", "m1.large"}


def test_member_lists_visible_categories_without_admin_fields(demo, api):
    client = api(demo.alice)
    assert _slugs(client.get(CATEGORIES)) == {"standard", "lb", "vsa"}
    vsa = client.get(f"{CATEGORIES}vsa/").json()
    assert vsa["max_instances"] == 3
    assert vsa["user_operations"] == ["launch", "reboot", "terminate", "appliance_gui"]
    assert not ADMIN_ONLY_CATEGORY_FIELDS & set(vsa)
    for item in client.get(CATEGORIES).json()["results"]:
        assert not ADMIN_ONLY_CATEGORY_FIELDS & set(item), item["slug"]


def test_member_cannot_see_a_hidden_category(demo, api):
    assert api(demo.alice).get(f"{CATEGORIES}cache/").status_code == 404


def test_category_list_filters(demo, api):
    assert _slugs(api(demo.admin).get(CATEGORIES, {"management": "provider"})) == {"lb", "cache"}
    assert _slugs(api(demo.admin).get(CATEGORIES, {"kind": "container"})) == {"cache"}
    assert _slugs(api(demo.alice).get(CATEGORIES, {"management": "provider"})) == {"lb"}


def test_anonymous_gets_401(demo, api):
    assert api().get(CATEGORIES).status_code == 401


# --- categories: write ------------------------------------------------------------------


def test_admin_creates_a_category(demo, api):
    response = api(demo.admin).post(CATEGORIES, _new_category(), format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["slug"] == "vpn"
    assert body["is_builtin"] is False
    vpn = InstanceCategory.objects.get(slug="vpn")
    assert vpn.management == "appliance"
    assert set(vpn.allowed_flavors.values_list("name", flat=True)) == {"m1.small", "m1.large"}
    assert vpn.extra_metadata == {"service": "vpn"}
    # A member now sees it too (user_visible defaults to true), without the admin fields.
    member_view = api(demo.alice).get(f"{CATEGORIES}vpn/").json()
    assert member_view["name"] == "VPN gateway"
    assert "extra_metadata" not in member_view


def test_default_flavor_is_always_allowed(demo, api):
    response = api(demo.admin).post(
        CATEGORIES, _new_category(default_flavor="m1.large", allowed_flavors=["m1.small"]), format="json"
    )
    assert response.status_code == 201, response.json()
    assert set(response.json()["allowed_flavors"]) == {"m1.small", "m1.large"}


@pytest.mark.parametrize("username", ["alice", "rita", "bob"])
def test_members_cannot_write_categories(demo, api, username):
    client = api(getattr(demo, username))
    assert client.post(CATEGORIES, _new_category(), format="json").status_code == 403
    assert client.patch(f"{CATEGORIES}vsa/", {"name": "mine"}, format="json").status_code == 403
    assert client.delete(f"{CATEGORIES}vsa/").status_code == 403
    assert not InstanceCategory.objects.filter(slug="vpn").exists()
    vsa = InstanceCategory.objects.get(slug="vsa")
    assert vsa.name == "Virtual storage array"


def test_member_write_attempt_does_not_reveal_hidden_slugs(demo, api):
    # "cache" is hidden from members: posting it must not answer "already exists".
    response = api(demo.alice).post(CATEGORIES, _new_category(slug="cache"), format="json")
    assert response.status_code == 403
    assert "cache" not in str(response.json())


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"user_operations": ["launch", "self_destruct"]}, "user_operations"),
        ({"user_operations": "launch"}, "user_operations"),
        ({"gui_port": 70000}, "gui_port"),
        ({"gui_port": 0}, "gui_port"),
        ({"gui_port": "http"}, "gui_port"),
        ({"gui_path": "admin"}, "gui_path"),
        ({"slug": "standard"}, "slug"),
        ({"slug": "not a slug!"}, "slug"),
        ({"kind": "unikernel"}, "kind"),
        ({"management": "provider", "user_operations": ["launch"]}, "user_operations"),
        ({"default_flavor": "m9.huge"}, "default_flavor"),
        ({"default_flavor": "m1.tiny", "allowed_flavors": ["m1.tiny"]}, "default_flavor"),
        ({"extra_metadata": ["a", "b"]}, "extra_metadata"),
        ({"max_instances": -1}, "max_instances"),
    ],
)
def test_invalid_category_is_400_naming_the_field(demo, api, overrides, field):
    response = api(demo.admin).post(CATEGORIES, _new_category(**overrides), format="json")
    assert response.status_code == 400, response.json()
    assert field in response.json(), response.json()
    assert not InstanceCategory.objects.filter(slug=overrides.get("slug", "vpn"), is_builtin=False).exists()


def test_duplicate_slug_is_400(demo, api):
    client = api(demo.admin)
    assert client.post(CATEGORIES, _new_category(), format="json").status_code == 201
    response = client.post(CATEGORIES, _new_category(name="Another"), format="json")
    assert response.status_code == 400
    assert "slug" in response.json()
    assert InstanceCategory.objects.filter(slug="vpn").count() == 1


def test_admin_patches_a_category(demo, api):
    response = api(demo.admin).patch(f"{CATEGORIES}vsa/", {"max_instances": 5, "description": "Bigger"}, format="json")
    assert response.status_code == 200, response.json()
    vsa = InstanceCategory.objects.get(slug="vsa")
    assert (vsa.max_instances, vsa.description) == (5, "Bigger")


def test_patch_with_bad_value_is_400_and_changes_nothing(demo, api):
    response = api(demo.admin).patch(f"{CATEGORIES}vsa/", {"gui_port": 99999, "name": "x"}, format="json")
    assert response.status_code == 400
    assert "gui_port" in response.json()
    vsa = InstanceCategory.objects.get(slug="vsa")
    assert (vsa.gui_port, vsa.name) == (8080, "Virtual storage array")


def test_standard_cannot_be_deleted(demo, api):
    response = api(demo.admin).delete(f"{CATEGORIES}standard/")
    assert response.status_code == 409
    assert InstanceCategory.objects.filter(slug="standard").exists()


def test_standard_cannot_be_deactivated(demo, api):
    response = api(demo.admin).patch(f"{CATEGORIES}standard/", {"is_active": False}, format="json")
    assert response.status_code == 409
    assert response.json()["field"] == "is_active"
    assert InstanceCategory.objects.get(slug="standard").is_active


def test_a_category_can_be_deactivated(demo, api):
    response = api(demo.admin).patch(f"{CATEGORIES}vsa/", {"is_active": False}, format="json")
    assert response.status_code == 200
    assert not InstanceCategory.objects.get(slug="vsa").is_active


def test_delete_category_with_live_instances_is_409(demo, api):
    InstanceFactory(category=demo.categories["vsa"], project=demo.acme)
    response = api(demo.admin).delete(f"{CATEGORIES}vsa/")
    assert response.status_code == 409
    assert "live" in response.json()["detail"]
    assert InstanceCategory.objects.filter(slug="vsa").exists()


def test_delete_category_with_only_deleted_instances_is_409(demo, api):
    # Events are never deleted and still name the category.
    InstanceFactory(category=demo.categories["vsa"], project=demo.acme, status="DELETED")
    assert api(demo.admin).delete(f"{CATEGORIES}vsa/").status_code == 409
    assert InstanceCategory.objects.filter(slug="vsa").exists()


def test_delete_unused_category_is_204(demo, api):
    client = api(demo.admin)
    assert client.post(CATEGORIES, _new_category(), format="json").status_code == 201
    assert client.delete(f"{CATEGORIES}vpn/").status_code == 204
    assert not InstanceCategory.objects.filter(slug="vpn").exists()
    assert client.get(f"{CATEGORIES}vpn/").status_code == 404


def test_slug_cannot_change_once_instances_exist(demo, api):
    InstanceFactory(category=demo.categories["vsa"], project=demo.acme)
    response = api(demo.admin).patch(f"{CATEGORIES}vsa/", {"slug": "storage"}, format="json")
    assert response.status_code == 409
    assert response.json()["field"] == "slug"
    assert InstanceCategory.objects.filter(slug="vsa").exists()


# --- allowed flavors ---------------------------------------------------------------------


def _flavor_names(response):
    assert response.status_code in (200, 201), response.json()
    return {f["name"] for f in response.json()}


def test_list_allowed_flavors(demo, api):
    assert _flavor_names(api(demo.alice).get(f"{CATEGORIES}vsa/flavors/")) == {"m1.small", "m1.large"}
    assert api(demo.alice).get(f"{CATEGORIES}cache/flavors/").status_code == 404


def test_admin_allows_and_disallows_a_flavor(demo, api):
    FlavorFactory(name="m2.xlarge", vcpus=8, ram_mb=16384, disk_gb=160)
    client = api(demo.admin)
    response = client.post(f"{CATEGORIES}vsa/flavors/", {"flavor": "m2.xlarge"}, format="json")
    assert response.status_code == 201
    assert _flavor_names(response) == {"m1.small", "m1.large", "m2.xlarge"}

    response = client.delete(f"{CATEGORIES}vsa/flavors/", {"flavor": "m1.large"}, format="json")
    assert _flavor_names(response) == {"m1.small", "m2.xlarge"}
    # DELETE also takes the flavor as a query parameter (clients that send no DELETE body).
    response = client.delete(f"{CATEGORIES}vsa/flavors/?flavor=m2.xlarge")
    assert _flavor_names(response) == {"m1.small"}
    assert set(demo.categories["vsa"].allowed_flavors.values_list("name", flat=True)) == {"m1.small"}


def test_allowing_a_flavor_below_the_minimums_is_400(demo, api):
    response = api(demo.admin).post(f"{CATEGORIES}vsa/flavors/", {"flavor": "m1.tiny"}, format="json")
    assert response.status_code == 400
    assert response.json()["field"] == "flavor"
    assert "flavor" in response.json()
    assert "m1.tiny" not in demo.categories["vsa"].allowed_flavors.values_list("name", flat=True)


def test_allowing_an_unknown_flavor_is_400(demo, api):
    response = api(demo.admin).post(f"{CATEGORIES}vsa/flavors/", {"flavor": "m9.huge"}, format="json")
    assert response.status_code == 400
    assert "flavor" in response.json()


def test_nul_characters_are_bad_input_not_a_crash(demo, api):
    client = api(demo.admin)
    assert client.get(f"{CATEGORIES}vsa%00/").status_code == 404
    assert client.post(f"{CATEGORIES}vsa/flavors/", {"flavor": "m1.large\x00"}, format="json").status_code == 400
    assert client.delete(f"{CATEGORIES}vsa/flavors/?flavor=m1.large%00").status_code == 400
    for body in ({"default_flavor": "m1.small\x00"}, {"allowed_flavors": ["m1.small\x00"]}, {"name": "VPN\x00"}):
        field = next(iter(body))
        response = client.post(CATEGORIES, _new_category(**body), format="json")
        assert response.status_code == 400
        assert field in response.json()
    assert api(demo.alice).get(IMAGES, {"category": "vsa\x00"}).status_code == 400


def test_default_flavor_cannot_be_disallowed(demo, api):
    response = api(demo.admin).delete(f"{CATEGORIES}vsa/flavors/", {"flavor": "m1.small"}, format="json")
    assert response.status_code == 409
    assert response.json()["field"] == "flavor"
    assert "m1.small" in demo.categories["vsa"].allowed_flavors.values_list("name", flat=True)


def test_members_cannot_change_allowed_flavors(demo, api):
    client = api(demo.alice)
    assert client.post(f"{CATEGORIES}vsa/flavors/", {"flavor": "m1.large"}, format="json").status_code == 403
    assert client.delete(f"{CATEGORIES}vsa/flavors/", {"flavor": "m1.large"}, format="json").status_code == 403
    assert "m1.large" in demo.categories["vsa"].allowed_flavors.values_list("name", flat=True)


# --- flavors ----------------------------------------------------------------------------


def test_flavors_list_and_category_filter(demo, api):
    Flavor.objects.filter(name="m1.large").update(backend_id="nova-42")
    admin, member = api(demo.admin), api(demo.alice)
    assert _names(member.get("/api/v1/flavors/")) == {"m1.tiny", "m1.small", "m1.large"}
    assert _names(member.get("/api/v1/flavors/", {"category": "vsa"})) == {"m1.small", "m1.large"}
    large = next(f for f in admin.get("/api/v1/flavors/").json()["results"] if f["name"] == "m1.large")
    assert large["backend_id"] == "nova-42"
    for flavor in member.get("/api/v1/flavors/").json()["results"]:
        assert "backend_id" not in flavor


def test_flavors_of_a_hidden_category_are_400_for_members(demo, api):
    response = api(demo.alice).get("/api/v1/flavors/", {"category": "cache"})
    assert response.status_code == 400
    assert "category" in response.json()
    assert _names(api(demo.admin).get("/api/v1/flavors/", {"category": "cache"})) == {"m1.tiny", "m1.small"}


def test_admin_creates_a_flavor_members_cannot(demo, api):
    body = {"name": "m2.huge", "vcpus": 16, "ram_mb": 65536, "disk_gb": 320}
    assert api(demo.alice).post("/api/v1/flavors/", body, format="json").status_code == 403
    assert not Flavor.objects.filter(name="m2.huge").exists()
    assert api(demo.admin).post("/api/v1/flavors/", body, format="json").status_code == 201
    assert Flavor.objects.filter(name="m2.huge", vcpus=16).exists()
    duplicate = api(demo.admin).post("/api/v1/flavors/", body, format="json")
    assert duplicate.status_code == 400
    assert "name" in duplicate.json()


# --- images -----------------------------------------------------------------------------

IMAGES = "/api/v1/images/"
ALL_IMAGES = {"debian-12", "fail-boot", "lb-amphora", "vsa-appliance", "cache-redis"}


def test_member_default_image_listing_hides_hidden_categories(demo, api):
    assert _names(api(demo.alice).get(IMAGES)) == ALL_IMAGES - {"cache-redis"}
    assert _names(api(demo.admin).get(IMAGES)) == ALL_IMAGES


def test_images_filtered_by_category(demo, api):
    assert _names(api(demo.alice).get(IMAGES, {"category": "standard"})) == {"debian-12", "fail-boot"}
    assert _names(api(demo.alice).get(IMAGES, {"category": "vsa"})) == {"vsa-appliance"}
    assert _names(api(demo.admin).get(IMAGES, {"category": "cache"})) == {"cache-redis"}
    assert _names(api(demo.admin).get(IMAGES, {"category": "all"})) == ALL_IMAGES


@pytest.mark.parametrize("category", ["cache", "no-such-category", "all"])
def test_member_asking_for_hidden_unknown_or_all_images_is_400(demo, api, category):
    response = api(demo.alice).get(IMAGES, {"category": category})
    assert response.status_code == 400
    assert "category" in response.json()


def test_hidden_and_unknown_categories_read_the_same(demo, api):
    hidden = api(demo.alice).get(IMAGES, {"category": "cache"}).json()
    unknown = api(demo.alice).get(IMAGES, {"category": "nope"}).json()
    assert hidden["category"] == [msg.replace("nope", "cache") for msg in unknown["category"]]


def test_member_cannot_fetch_an_image_of_a_hidden_category(demo, api):
    redis = demo.images["cache-redis"]
    assert api(demo.alice).get(f"{IMAGES}{redis.pk}/").status_code == 404
    assert api(demo.admin).get(f"{IMAGES}{redis.pk}/").status_code == 200


def test_untagged_images_are_generic(demo, api):
    ImageFactory(name="ubuntu-24.04")
    assert "ubuntu-24.04" in _names(api(demo.alice).get(IMAGES))


def test_image_shared_by_a_visible_and_a_hidden_category_is_listed_for_members(demo, api):
    shared = ImageFactory(name="base-os")
    shared.categories.set([demo.categories["standard"], demo.categories["cache"]])
    assert "base-os" in _names(api(demo.alice).get(IMAGES))
    assert "base-os" in _names(api(demo.alice).get(IMAGES, {"category": "standard"}))


def test_members_do_not_see_image_backend_ids(demo, api):
    for image in api(demo.alice).get(IMAGES).json()["results"]:
        assert "backend_id" not in image
    admin_view = api(demo.admin).get(f"{IMAGES}{demo.images['debian-12'].pk}/").json()
    assert admin_view["backend_id"] == "debian-12"
    assert admin_view["categories"] == ["standard"]


def test_inactive_images_can_be_filtered_out(demo, api):
    Image.objects.filter(name="fail-boot").update(is_active=False)
    assert "fail-boot" not in _names(api(demo.alice).get(IMAGES, {"is_active": "true"}))


# --- volumes ----------------------------------------------------------------------------

VOLUMES = "/api/v1/volumes/"


def test_volumes_of_own_projects_only(demo, api):
    assert _names(api(demo.alice).get(VOLUMES)) == {"acme-vsa-data"}
    assert _names(api(demo.rita).get(VOLUMES)) == {"acme-vsa-data"}
    assert _names(api(demo.bob).get(VOLUMES)) == {"globex-vsa-data"}
    assert _names(api(demo.admin).get(VOLUMES)) == {"acme-vsa-data", "globex-vsa-data"}
    globex = next(v for v in api(demo.admin).get(VOLUMES).json()["results"] if v["name"] == "globex-vsa-data")
    assert api(demo.alice).get(f"{VOLUMES}{globex['id']}/").status_code == 404


def test_volumes_filtered_by_category(demo, api):
    cache_volume = Volume.objects.create(name="acme-cache-data", size_gb=10, project=demo.acme)
    cache_volume.categories.set([demo.categories["cache"]])
    assert _names(api(demo.alice).get(VOLUMES, {"category": "vsa"})) == {"acme-vsa-data"}
    assert _names(api(demo.alice).get(VOLUMES, {"category": "standard"})) == set()
    # Hidden-category volumes stay out of the member's default listing.
    assert _names(api(demo.alice).get(VOLUMES)) == {"acme-vsa-data"}
    assert api(demo.alice).get(VOLUMES, {"category": "cache"}).status_code == 400
    assert _names(api(demo.admin).get(VOLUMES, {"category": "cache"})) == {"acme-cache-data"}
    assert _names(api(demo.admin).get(VOLUMES, {"category": "all"})) == {
        "acme-vsa-data",
        "globex-vsa-data",
        "acme-cache-data",
    }


def test_members_do_not_see_volume_backend_ids(demo, api):
    Volume.objects.filter(name="acme-vsa-data").update(backend_id="cinder-7")
    assert "backend_id" not in api(demo.alice).get(VOLUMES).json()["results"][0]
    admin_view = next(v for v in api(demo.admin).get(VOLUMES).json()["results"] if v["name"] == "acme-vsa-data")
    assert admin_view["backend_id"] == "cinder-7"


def test_list_filters_never_narrow_a_detail_lookup(demo, api):
    client = api(demo.alice)
    assert client.get(f"{CATEGORIES}vsa/?kind=container").status_code == 200
    assert client.get(f"{CATEGORIES}vsa/?kind=bogus").status_code == 200
    assert _slugs(client.get(f"{CATEGORIES}?kind=container")) == set()  # the list still filters
