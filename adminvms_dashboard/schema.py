"""The OpenAPI schema tells the whole truth: every error an operation can answer.

drf-spectacular documents the success answer of each operation. The ``AutoSchema``
here adds the error answers that come from the one exception handler
(``adminvms_dashboard.api.exception_handler``), by what the operation is:

- 400 when it reads a body or query parameters other than the page;
- 401 always (no credentials where they are needed, or a bad token anywhere);
- 403 for every write (policy, catalog writes, a session without its CSRF token);
- 404 for routes with an id (unknown and invisible read the same) and for paginated
  lists (a page that does not exist).

409 depends on the operation's rules, so views declare it with ``conflict(...)``.
"""

from __future__ import annotations

from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.plumbing import ResolvedComponent
from drf_spectacular.utils import OpenApiResponse
from rest_framework import permissions

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
BAD_INPUT = "Bad input; the messages name the offending field."


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
        if any(p["in"] == "path" for p in parameters):
            errors["404"] = ("Error", NOT_FOUND)
        elif paginator is not None and query & page_params:
            errors["404"] = ("Error", NO_SUCH_PAGE)
        return errors

    def get_auth(self):
        auths = super().get_auth()
        # A view without permission classes (the token endpoint) is open to anybody.
        if not self.view.get_permissions() and {} not in auths:
            auths.append({})
        return auths
