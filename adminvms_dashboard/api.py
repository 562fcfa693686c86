"""What every API view shares: pagination and the one exception handler."""

from __future__ import annotations

import logging

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import JsonResponse
from django.views import defaults
from rest_framework import serializers, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from tenancy.errors import DomainError, InvalidInput

log = logging.getLogger(__name__)


class Pagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 1000


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
