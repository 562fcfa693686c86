"""What every API view shares: pagination and the one exception handler."""

from __future__ import annotations

import logging

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from django.http import JsonResponse
from django.views import defaults
from rest_framework import serializers, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param
from rest_framework.views import exception_handler as drf_exception_handler

from tenancy.errors import DomainError, InvalidInput

from .paging import InvalidCursor, Keyset, Paginator, rows_in_order

log = logging.getLogger(__name__)


class Pagination(PageNumberPagination):
    """Pages by number (``?page=``, ``?page_size=``), and ``next`` links that continue from the last row.

    A ``next`` link carries a signed ``cursor`` (the ordering values of the page's last row, the next
    page's number and the list's count): its page is read from where the last one ended, through the
    ordering's index, so that walking a list of 100,000 rows reads each row once and a deep page costs
    what the first does. ``count`` on such a page is the count when the walk's first page was read.
    ``?page=N`` keeps working as it always did. Lists whose ordering is not a keyset get number links.
    """

    django_paginator_class = Paginator
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 1000
    cursor_query_param = "cursor"

    def paginate_queryset(self, queryset, request, view=None):
        self.keyset = Keyset.of(queryset) if isinstance(queryset, QuerySet) else None
        self.after_last = None  # the next page's cursor, when there is a next page
        cursor = request.query_params.get(self.cursor_query_param)
        if cursor is None or self.keyset is None:
            rows = super().paginate_queryset(queryset, request, view)
            if rows and self.keyset is not None and self.page.has_next():
                self.after_last = self.keyset.cursor(
                    self.keyset.values_of(rows[-1]), number=self.page.number + 1, count=self.page.paginator.count
                )
            return rows
        self.request = request
        try:
            values, number, count = self.keyset.read(cursor, queryset.model)
        except InvalidCursor as exc:
            raise serializers.ValidationError({self.cursor_query_param: [str(exc)]}) from exc
        size = self.get_page_size(request)
        ids = list(queryset.filter(self.keyset.after(values)).values_list("pk", flat=True)[: size + 1])
        rows = rows_in_order(queryset, ids[:size])
        paginator = self.django_paginator_class(queryset, size)
        # The count as the walk's first page read it, never below what the walk has shown.
        paginator.count = max(count, (number - 1) * size + len(rows))
        self.page = paginator._get_page(rows, number, paginator)
        if len(ids) > size:
            self.after_last = self.keyset.cursor(self.keyset.values_of(rows[-1]), number=number + 1, count=count)
        return rows

    def get_next_link(self):
        if self.after_last is None:
            return None
        url = remove_query_param(self.request.build_absolute_uri(), self.page_query_param)
        return replace_query_param(url, self.cursor_query_param, self.after_last)

    def get_previous_link(self):
        link = super().get_previous_link()
        return link and remove_query_param(link, self.cursor_query_param)

    def get_schema_operation_parameters(self, view):
        return [
            *super().get_schema_operation_parameters(view),
            {
                "name": self.cursor_query_param,
                "required": False,
                "in": "query",
                "description": "Where a `next` link continues the list (made by the server; pass it as given).",
                "schema": {"type": "string"},
            },
        ]


class FiltersOnListOnly:
    """A viewset mixin: the FilterSet narrows the list, never a detail lookup.

    DRF's ``get_object`` filters its queryset too, so ``GET /categories/lb/?kind=container``
    would answer 404 (and ``?kind=bogus`` 400) for a category the caller may see.
    """

    def filter_queryset(self, queryset):
        return super().filter_queryset(queryset) if self.action == "list" else queryset


# What a SlugField holds (Django's validate_slug); a URL lookup by slug matches only this.
SLUG_PATTERN = "[-a-zA-Z0-9_]+"


class SlugRelatedField(serializers.SlugRelatedField):
    """DRF's field, refusing NUL characters before the lookup: PostgreSQL raises
    on them instead of matching nothing, which would make bad input a 500."""

    def to_internal_value(self, data):
        if isinstance(data, str) and "\x00" in data:
            self.fail("invalid")
        return super().to_internal_value(data)


def exception_handler(exc, context):
    """Domain errors become JSON naming the field: ``{"detail": …, "field": …, "<field>": [...]}``."""
    if isinstance(exc, DjangoValidationError):
        exc = InvalidInput.from_validation_error(exc)
    if isinstance(exc, DomainError):
        return Response(exc.as_dict(), status=exc.status)
    response = drf_exception_handler(exc, context)
    if response is None:
        log.exception("unhandled error in %s", context.get("view"), exc_info=exc)
        return Response(
            {"detail": "Internal error; it has been logged.", "code": "internal"},
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )
    return response


def not_found(request, exception):
    """Django's 404 for a URL that matches no route (``/api/v1/flavors/0.5/``): JSON under
    ``/api/``, like every other API error, and the usual page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)
