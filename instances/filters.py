"""The instance FilterSet, shared by the REST API and the console's table."""

from __future__ import annotations

import django_filters
from django.core.exceptions import ValidationError
from django.db.models import Subquery

from categories.choices import STANDARD_SLUG
from categories.filters import CategoryParamFilterSet
from categories.models import InstanceCategory
from tenancy import policy
from tenancy.models import Project

from .choices import Status
from .models import Instance


class StableOrderingFilter(django_filters.OrderingFilter):
    """Sorts by the chosen fields, then newest first and by id, so pages never overlap."""

    def filter(self, qs, value):
        fields = [self.get_ordering_value(v) for v in value or [] if v]
        return qs.order_by(*fields, "-created_at", "pk")


class InstanceFilterSet(CategoryParamFilterSet):
    """Rule 1: without ``category`` only ``standard`` instances; without ``status``
    no DELETED ones (they stay as history, asked for with ``?status=DELETED``)."""

    status = django_filters.CharFilter(method="filter_status")
    project = django_filters.CharFilter(method="filter_project")
    backend = django_filters.CharFilter()
    name = django_filters.CharFilter(lookup_expr="icontains")
    ordering = StableOrderingFilter(
        fields=(("name", "name"), ("status", "status"), ("created_at", "created"), ("category__slug", "category"),
                ("project__slug", "project"), ("backend", "backend")),
    )  # fmt: skip

    class Meta:
        model = Instance
        fields = ["backend", "name"]

    def filter_queryset(self, queryset):
        queryset = super().filter_queryset(queryset)
        data = self.form.cleaned_data
        if not data.get("category"):
            # By id, not by a join on the slug: the list's index (category, created_at) then serves the page.
            standard = InstanceCategory.objects.filter(slug=STANDARD_SLUG).values("pk")[:1]
            queryset = queryset.filter(category_id=Subquery(standard))
        if not data.get("status"):
            queryset = queryset.exclude(status=Status.DELETED)
        return queryset

    def filter_status(self, queryset, name, value):
        wanted = [v.strip().upper() for v in value.split(",") if v.strip()]
        if unknown := [v for v in wanted if v not in Status.values]:
            raise ValidationError(
                {"status": f"Unknown status {', '.join(unknown)}; choose from {', '.join(Status.values)}."}
            )
        return queryset.filter(status__in=wanted)

    def filter_project(self, queryset, name, value):
        project = Project.objects.filter(policy.projects_q(self._user())).filter(slug=value).first()
        if project is None:
            raise ValidationError({"project": f"Unknown project '{value}'."})
        return queryset.filter(project=project)
