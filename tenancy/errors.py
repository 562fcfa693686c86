"""The one family of domain errors that services raise.

The REST API maps them to JSON in one exception handler, the web pages to form
errors and messages, management commands to ``CommandError``.
"""

from __future__ import annotations


class DomainError(Exception):
    status = 400
    code = "invalid"

    def __init__(self, message: str, *, field: str | None = None, errors: dict[str, list[str]] | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.errors = errors or ({field: [message]} if field else {})

    def as_dict(self) -> dict:
        """JSON body: the message, and the offending fields as DRF names them (``{"flavor": [...]}``)."""
        body: dict = {"detail": self.message, "code": self.code}
        if self.field:
            body["field"] = self.field
        body.update(self.errors)
        return body


class InvalidInput(DomainError):
    status = 400
    code = "invalid"

    @classmethod
    def from_validation_error(cls, exc) -> InvalidInput:
        """From Django's ``ValidationError`` raised by ``Model.full_clean()``."""
        if hasattr(exc, "error_dict"):
            errors = {("non_field_errors" if f == "__all__" else f): msgs for f, msgs in exc.message_dict.items()}
            field, messages = next(iter(errors.items()))
            return cls(f"{field}: {messages[0]}", field=field, errors=errors)
        return cls("; ".join(exc.messages))


class IdempotencyMismatch(InvalidInput):
    """A client token already used for a different request."""

    code = "idempotency_mismatch"


class Forbidden(DomainError):
    status = 403
    code = "forbidden"


class NotFound(DomainError):
    status = 404
    code = "not_found"


class Conflict(DomainError):
    status = 409
    code = "conflict"


class Throttled(DomainError):
    status = 429
    code = "throttled"


class QuotaExceeded(Conflict):
    code = "quota_exceeded"


# By the values of policy.Denial (a StrEnum): 404, 403, 409.
_BY_DENIAL = {"not_found": NotFound, "forbidden": Forbidden, "conflict": Conflict}


def require(verdict, *, field: str | None = None) -> None:
    """Raise the domain error that matches a denied ``policy.Verdict`` (errors import nothing of tenancy)."""
    if not verdict:
        raise _BY_DENIAL[verdict.denial](verdict.reason, field=field or verdict.field)
