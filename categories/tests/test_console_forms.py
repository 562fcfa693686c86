"""The console's category form submitted as the page renders it (issue 28): saving what it shows changes
nothing and shows no error, and a change of one field lands."""

from __future__ import annotations

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
