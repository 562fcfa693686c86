"""The console's category form submitted as the page renders it (issue 28): saving what it shows changes
nothing and shows no error, and a change of one field lands."""

from __future__ import annotations

import re

import pytest
from django.forms.models import model_to_dict

from categories.models import InstanceCategory
from tests.rendered_forms import rendered_form

SLUGS = ["standard", "lb", "vsa", "cache"]


def _state(slug: str) -> dict:
    category = InstanceCategory.objects.get(slug=slug)
    state = model_to_dict(category)
    state["allowed_flavors"] = sorted(f.pk for f in category.allowed_flavors.all())
    return state


@pytest.mark.parametrize("slug", SLUGS)
def test_saving_the_category_form_as_rendered_changes_nothing(demo, web, slug):
    InstanceCategory.objects.filter(slug=slug).update(extra_metadata={"service": "storage", "tier": "gold"})
    before = _state(slug)
    client = web(demo.admin)
    page = client.get(f"/console/categories/{slug}/")
    assert page.status_code == 200
    answer = client.post(f"/console/categories/{slug}/", rendered_form(page.content.decode(), "category-form"))
    assert answer.status_code == 302, answer.content.decode()
    assert _state(slug) == before


def test_a_changed_field_lands_through_the_rendered_form(demo, web):
    client = web(demo.admin)
    data = rendered_form(client.get("/console/categories/vsa/").content.decode(), "category-form")
    data["extra_metadata"] = ['{"service": "storage"}']
    data["max_instances"] = ["5"]
    assert client.post("/console/categories/vsa/", data).status_code == 302
    vsa = InstanceCategory.objects.get(slug="vsa")
    assert (vsa.extra_metadata, vsa.max_instances) == ({"service": "storage"}, 5)
    # And the page shows the saved metadata as the JSON it is, once encoded.
    page = client.get("/console/categories/vsa/").content.decode()
    assert "{&quot;service&quot;: &quot;storage&quot;}" in page and "&quot;{" not in page


def test_every_field_of_the_form_stands_in_one_section():
    from categories.forms import CATEGORY_FORM_FIELDS, CATEGORY_SECTIONS

    placed = [name for _, names, _ in CATEGORY_SECTIONS for name in names]
    assert sorted(placed) == sorted(CATEGORY_FORM_FIELDS) and len(placed) == len(set(placed))


LABELS = ["Minimum vCPUs", "Minimum RAM (MB)", "Minimum disk (GB)", "GUI port", "Health-check grace (s)",
          "Spare pool size", "Active", "Member operations", "Visible to members", "Instances per project"]  # fmt: skip


def test_labels_and_help_are_words_a_person_reads_in_the_form_and_the_schema(demo, web, api):
    page = web(demo.admin).get("/console/categories/vsa/").content.decode()
    for label in LABELS:
        assert f">{label}</label>" in page, label
    for default in ("Min ram mb", "Gui port", "Is active", "User operations", "Health check grace"):
        assert default not in page, default
    legends = re.findall(r"<legend[^>]*>([^<]+)</legend>", page)
    assert legends == ["Identity and access", "Hardware", "Image", "Placement", "Appliance GUI",
                       "Quota and spare pool", "Health and healing", "Extra metadata"]  # fmt: skip
    schema = api(demo.admin).get("/api/schema/", {"format": "json"}).json()
    fields = schema["components"]["schemas"]["Category"]["properties"]
    assert fields["min_ram_mb"]["title"] == "Minimum RAM (MB)"
    assert "memory" in fields["min_ram_mb"]["description"]
    assert fields["user_operations"]["title"] == "Member operations"
    assert "project members may do" in fields["user_operations"]["description"]
    assert fields["health_check_grace"]["title"] == "Health-check grace (s)"


def test_bad_metadata_json_says_where_it_went_wrong_and_saves_nothing(demo, web):
    client = web(demo.admin)
    data = rendered_form(client.get("/console/categories/vsa/").content.decode(), "category-form")
    data["extra_metadata"] = ['{"service": "storage",}']
    answer = client.post("/console/categories/vsa/", data)
    assert answer.status_code == 200
    errors = re.findall(r'data-field="extra_metadata">([^<]+)<', answer.content.decode())
    assert errors == ["Not valid JSON: Expecting property name enclosed in double quotes (line 1, column 23)."]
    assert InstanceCategory.objects.get(slug="vsa").extra_metadata == {}
