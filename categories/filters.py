"""One FilterSet per model for the REST API; the console's image and volume lists use the same ones."""

from __future__ import annotations

import django_filters
from django.core.exceptions import ValidationError

from tenancy import policy

from .choices import Kind, Management
from .models import Flavor, Image, InstanceCategory, Volume
from .selectors import images_offered

ALL = "all"


def category_from_param(user, value: str) -> InstanceCategory | None:
    """``?category=SLUG`` → the category, ``None`` for ``all`` (provider admins only).

    A category the user may not see is "unknown", like one that does not exist,
    so that nothing leaks.
    """
    if value == ALL:
        if not policy.is_provider_admin(user):
            raise ValidationError({"category": "Only provider admins may ask for every category."})
        return None
    category = InstanceCategory.objects.visible_to(user).filter(slug=value).first()
    if category is None:
        raise ValidationError({"category": f"Unknown category '{value}'."})
    return category


class CategoryParamFilterSet(django_filters.FilterSet):
    """Adds ``?category=SLUG|all``; subclasses say what no parameter means."""

    category = django_filters.CharFilter(method="filter_category")

    def _user(self):
        return getattr(self.request, "user", None)

    def filter_category(self, queryset, name, value):
        category = category_from_param(self._user(), value)
        return queryset if category is None else queryset.filter(**{name: category})


class CategoryFilterSet(django_filters.FilterSet):
    kind = django_filters.ChoiceFilter(choices=Kind.choices)
    management = django_filters.ChoiceFilter(choices=Management.choices)

    class Meta:
        model = InstanceCategory
        fields = ["kind", "management", "is_active", "user_visible"]


class FlavorFilterSet(django_filters.FilterSet):
    category = django_filters.CharFilter(method="filter_category")

    class Meta:
        model = Flavor
        fields = ["name", "is_active"]

    def filter_category(self, queryset, name, value):
        category = category_from_param(getattr(self.request, "user", None), value)
        if category is None or not category.allowed_flavors.exists():
            return queryset
        return queryset.filter(categories=category)


class ImageFilterSet(CategoryParamFilterSet):
    kind = django_filters.ChoiceFilter(choices=Kind.choices)
    name = django_filters.CharFilter(lookup_expr="icontains")

    class Meta:
        model = Image
        fields = ["kind", "name", "is_active"]

    def filter_category(self, queryset, name, value):
        """What a launch of the category accepts, and nothing else (``images_offered``)."""
        category = category_from_param(self._user(), value)
        return queryset if category is None else images_offered(category, queryset)


class VolumeFilterSet(CategoryParamFilterSet):
    """Without ``status``, volumes the backend no longer lists (``gone``) are left out."""

    project = django_filters.CharFilter(field_name="project__slug")
    name = django_filters.CharFilter(lookup_expr="icontains")
    status = django_filters.CharFilter()
    backend = django_filters.CharFilter()

    class Meta:
        model = Volume
        fields = ["name", "status", "backend"]

    def filter_queryset(self, queryset):
        queryset = super().filter_queryset(queryset)
        if not self.form.cleaned_data.get("status"):
            queryset = queryset.exclude(status="gone")
        return queryset

    def filter_category(self, queryset, name, value):
        return super().filter_category(queryset, "categories", value).distinct()
