"""One atomic path for every interface: the REST API and the console's form change a
category through the same single service call, with the same meaning, and a refused
request changes nothing."""

from __future__ import annotations

import json

import pytest
from django.forms.models import model_to_dict

from categories import services
from categories.forms import CategoryForm
from categories.models import InstanceCategory

CATEGORIES = "/api/v1/categories/"


def _make(demo, slug: str, allowed=("m1.tiny", "m1.small"), **fields) -> InstanceCategory:
    data = {
        "slug": slug,
        "name": "Twin",
        "management": "appliance",
        "user_operations": ["launch", "reboot"],
        "default_flavor": demo.flavors["m1.tiny"],
        **fields,
    }
    flavors = [demo.flavors[name] for name in allowed]
    return services.category_create(user=demo.admin, data=data, allowed_flavors=flavors)


def _state(slug: str) -> dict:
    """Everything a category holds but its identity and timestamps."""
    category = InstanceCategory.objects.get(slug=slug)
    data = model_to_dict(category, exclude=["id", "slug", "allowed_flavors"])
    data["allowed_flavors"] = sorted(category.allowed_flavors.values_list("name", flat=True))
    return data


def _form_post(category: InstanceCategory, **changes) -> dict:
    """What the console's edit form posts for ``category`` with ``changes`` typed in."""
    form = CategoryForm(instance=category)
    data = {}
    for name in form.fields:
        value = changes.get(name, form.initial.get(name))
        if isinstance(value, bool):
            if value:
                data[name] = "on"
        elif value is None:
            data[name] = ""
        elif isinstance(value, dict):
            data[name] = json.dumps(value)
        elif isinstance(value, (list, tuple)):
            data[name] = [getattr(v, "pk", v) for v in value]
        else:
            data[name] = getattr(value, "pk", value)
    return data


def test_api_and_console_replace_the_allowed_flavors_alike(demo, api, web):
    _make(demo, "twin-api")
    via_console = _make(demo, "twin-console")
    assert _state("twin-api") == _state("twin-console")

    response = api(demo.admin).patch(
        f"{CATEGORIES}twin-api/", {"description": "resized", "allowed_flavors": ["m1.large"]}, format="json"
    )
    assert response.status_code == 200, response.json()
    form = _form_post(via_console, description="resized", allowed_flavors=[demo.flavors["m1.large"]])
    response = web(demo.admin).post("/console/categories/twin-console/", form)
    assert response.status_code == 302, response.content.decode()[:2000]

    # Replaced, not added to: m1.small is gone; the default flavor stays allowed.
    assert _state("twin-api")["allowed_flavors"] == ["m1.large", "m1.tiny"]
    assert _state("twin-api") == _state("twin-console")


def test_a_patch_without_allowed_flavors_keeps_them(demo, api):
    _make(demo, "twin")
    response = api(demo.admin).patch(f"{CATEGORIES}twin/", {"description": "only this"}, format="json")
    assert response.status_code == 200
    assert _state("twin")["allowed_flavors"] == ["m1.small", "m1.tiny"]


@pytest.mark.parametrize("caller", ["api", "console"])
def test_a_refused_change_changes_nothing(demo, api, web, caller):
    """The fields are valid, the flavor list is not (below the minimums): the whole request is refused."""
    category = _make(demo, "twin", allowed=["m1.small"], min_ram_mb=1024, default_flavor=demo.flavors["m1.small"])
    before = _state("twin")
    if caller == "api":
        response = api(demo.admin).patch(
            f"{CATEGORIES}twin/", {"description": "half-written?", "allowed_flavors": ["m1.tiny"]}, format="json"
        )
        assert response.status_code == 400
        assert response.json()["field"] == "allowed_flavors"
    else:
        form = _form_post(category, description="half-written?", allowed_flavors=[demo.flavors["m1.tiny"]])
        response = web(demo.admin).post("/console/categories/twin/", form)
        assert response.status_code == 200  # the form again, with the error under the field
        assert "below the minimums" in response.content.decode()
    assert _state("twin") == before


def test_console_offers_only_the_buttons_the_policy_allows(demo, web):
    _make(demo, "twin")
    services.category_deactivate(user=demo.admin, category=InstanceCategory.objects.get(slug="twin"))
    body = web(demo.admin).get("/console/categories/").content.decode()
    rows = {slug: body.split(f'data-slug="{slug}"')[1].split("</tr>")[0] for slug in ("standard", "vsa", "twin")}
    assert "/deactivate/" not in rows["standard"] and "/delete/" not in rows["standard"]  # built-in
    assert "/deactivate/" in rows["vsa"] and "/delete/" in rows["vsa"]
    assert "/deactivate/" not in rows["twin"] and "/delete/" in rows["twin"]  # already inactive
