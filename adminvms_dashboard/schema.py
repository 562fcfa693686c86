"""The OpenAPI schema tells the whole truth: every error an operation can answer, and
fields that some callers do not get.

drf-spectacular documents the success answer of each operation. The ``AutoSchema``
here adds the error answers that come from the one exception handler
(``adminvms_dashboard.api.exception_handler``), by what the operation is:

- 400 when it reads a body or query parameters other than the page;
- 401 always (no credentials where they are needed, or a bad token anywhere);
- 403 for every write (policy, catalog writes, a session without its CSRF token);
- 404 for routes with an id (unknown and invisible read the same) and for paginated
  lists (a page that does not exist).

409 depends on the operation's rules, so views declare it with ``conflict(...)``.

It also documents what serializers leave out for some callers (``Meta.admin_only``,
``Meta.member_fields``, ``Meta.restricted_fields``) as optional, and marks output
fields nullable when their model field or their default is ``None``.
"""

from __future__ import annotations

import copy

from django.core.exceptions import FieldDoesNotExist
from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.plumbing import ResolvedComponent, get_override
from drf_spectacular.utils import OpenApiResponse
from rest_framework import permissions, serializers

# What the exception handler answers, as JSON Schema. Field messages are lists of
# strings; a list or mapping field (``user_operations``, ``extra_metadata``) nests
# them by index or key.
FIELD_ERRORS = {
    "description": "Messages about one field; for a list or mapping field, messages by index or key.",
    "oneOf": [
        {"type": "array", "items": {"type": "string"}},
        {"type": "object", "additionalProperties": {"$ref": "#/components/schemas/FieldErrors"}},
    ],
}
VALIDATION_ERROR = {
    "type": "object",
    "description": (
        "Bad input (400). Messages by field name, as DRF gives them, and `non_field_errors` for the "
        "input as a whole. Rules checked by the service also give `detail` (one sentence naming the "
        "field), `code` (`invalid`) and `field` (the offending field). A body that cannot be parsed "
        "answers `detail` alone."
    ),
    "properties": {
        "detail": {"type": "string"},
        "code": {"type": "string", "enum": ["invalid"]},
        "field": {"type": "string"},
        "non_field_errors": {"type": "array", "items": {"type": "string"}},
    },
    "additionalProperties": {"$ref": "#/components/schemas/FieldErrors"},
    "minProperties": 1,
}
ERROR = {
    "type": "object",
    "description": (
        "Any other error (401, 403, 404): `detail` says why. Refusals by the service also give "
        "`code` and, when one field is at fault, `field` and its messages under the field's name."
    ),
    "properties": {
        "detail": {"type": "string"},
        "code": {"type": "string", "enum": ["forbidden", "not_found"]},
        "field": {"type": "string"},
    },
    "additionalProperties": {"type": "array", "items": {"type": "string"}},
    "required": ["detail"],
}
CONFLICT = {
    "type": "object",
    "description": (
        "The request is allowed but conflicts with the current state (409): another action in "
        "progress, live instances, a quota. `field` and its messages name the field at fault, if any."
    ),
    "properties": {
        "detail": {"type": "string"},
        "code": {"type": "string", "enum": ["conflict", "quota_exceeded"]},
        "field": {"type": "string"},
    },
    "additionalProperties": {"type": "array", "items": {"type": "string"}},
    "required": ["detail", "code"],
}
COMPONENTS = {"FieldErrors": FIELD_ERRORS, "ValidationError": VALIDATION_ERROR, "Error": ERROR, "Conflict": CONFLICT}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def conflict(description: str) -> OpenApiResponse:
    """A 409 answer for ``extend_schema(responses={…, 409: conflict("when …")})``."""
    return OpenApiResponse(response=_ref("Conflict"), description=description)


UNAUTHORIZED = "Not authenticated, or the token is invalid."
FORBIDDEN = (
    "Not allowed: readers only read, members only invoke their category's `user_operations`, "
    "catalog writes are provider-only; also a session request without its CSRF token."
)
NOT_FOUND = "No such object, or one the caller may not see (never 403, so nothing leaks)."
NO_SUCH_PAGE = "No such page."
NOT_FOUND_OR_PAGE = "No such object, or one the caller may not see; or no such page."
BAD_INPUT = "Bad input; the messages name the offending field."

ADMIN_ONLY_NOTE = "For provider admins only, absent for other callers"
RESTRICTED_NOTE = "Absent in the restricted view that members get of appliance and provider instances (`restricted`)"


class AutoSchema(SpectacularAutoSchema):
    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        for name, schema in COMPONENTS.items():
            registry.register_on_missing(
                ResolvedComponent(name=name, type=ResolvedComponent.SCHEMA, object=name, schema=schema)
            )
        responses = operation["responses"]
        content_types = self.map_renderers("media_type")
        for code, (component, description) in self._error_responses(operation).items():
            responses.setdefault(
                code,
                {"content": {ct: {"schema": _ref(component)} for ct in content_types}, "description": description},
            )
        operation["responses"] = dict(sorted(responses.items()))
        return operation

    def _error_responses(self, operation: dict) -> dict[str, tuple[str, str]]:
        """The error answers this operation can give, by what kind of operation it is."""
        parameters = operation.get("parameters", [])
        query = {p["name"] for p in parameters if p["in"] == "query"}
        paginator = self._get_paginator()
        page_params = {getattr(paginator, "page_query_param", None), getattr(paginator, "page_size_query_param", None)}
        errors = {}
        if "requestBody" in operation or query - page_params:
            errors["400"] = ("ValidationError", BAD_INPUT)
        if self.view.get_authenticators():
            errors["401"] = ("Error", UNAUTHORIZED)
        if self.method not in permissions.SAFE_METHODS:
            errors["403"] = ("Error", FORBIDDEN)
        paginated = paginator is not None and bool(query & page_params)
        if any(p["in"] == "path" for p in parameters):
            errors["404"] = ("Error", NOT_FOUND_OR_PAGE if paginated else NOT_FOUND)
        elif paginated:
            errors["404"] = ("Error", NO_SUCH_PAGE)
        return errors

    def get_auth(self):
        auths = super().get_auth()
        # A view without permission classes (the token endpoint) is open to anybody.
        if not self.view.get_permissions() and {} not in auths:
            auths.append({})
        return auths

    def _map_basic_serializer(self, serializer, direction):
        schema = super()._map_basic_serializer(serializer, direction)
        if not serializer.__class__.__doc__ and not get_override(serializer, "description"):
            # Only a serializer's own docstring describes it, not a mixin's (AdminFieldsMixin).
            schema.pop("description", None)
        if direction != "response":
            return schema
        notes = []
        for note, names in _sometimes_absent(serializer).items():
            for name in names:
                if name in schema.get("required", []):
                    schema["required"].remove(name)
            notes.append(f"{note}: {', '.join(f'`{name}`' for name in names)}.")
        if not schema.get("required"):
            schema.pop("required", None)
        if notes:
            schema["description"] = "\n\n".join([*filter(None, [schema.get("description")]), *notes])
        return schema

    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        if direction == "response":
            field = _as_rendered(field)
        return super()._map_serializer_field(field, direction, bypass_extensions)


def _sometimes_absent(serializer) -> dict[str, list[str]]:
    """Fields of ``serializer`` that some callers do not get, by why, from its ``Meta``."""
    meta = getattr(serializer, "Meta", None)
    member_fields = getattr(meta, "member_fields", None)
    absent: dict[str, list[str]] = {}
    for name in serializer.fields:
        if name in getattr(meta, "admin_only", ()) or (member_fields is not None and name not in member_fields):
            absent.setdefault(ADMIN_ONLY_NOTE, []).append(name)
        elif name in getattr(meta, "restricted_fields", ()):
            absent.setdefault(RESTRICTED_NOTE, []).append(name)
    return absent


def _as_rendered(field: serializers.Field) -> serializers.Field:
    """``field`` as its output can really be: ``null`` when its model field is nullable (a
    read-only field does not say so) or its default is ``None``; blank when its model field
    is a blank-able choice."""
    model_field = _model_field(field)
    can_be_null = field.default is None or (model_field is not None and model_field.null)
    can_be_blank = (
        isinstance(field, serializers.ChoiceField)
        and model_field is not None
        and model_field.blank
        and not field.allow_blank
    )
    if (can_be_null and not field.allow_null) or can_be_blank:
        field = copy.copy(field)
        field.allow_null = field.allow_null or can_be_null
        if can_be_blank:
            field.allow_blank = True
    return field


def _model_field(field: serializers.Field):
    """The model field behind ``field.source``, following relations: the first nullable one
    on the way, else the last; ``None`` when the source is not a model field."""
    parent = getattr(field, "parent", None)
    model = getattr(getattr(parent, "Meta", None), "model", None)
    if model is None or not getattr(field, "source_attrs", None):
        return None
    found = None
    for attr in field.source_attrs:
        if model is None:
            return None
        try:
            found = model._meta.get_field(attr)
        except FieldDoesNotExist:
            return None
        if found.null:
            return found
        model = found.related_model
    return found
