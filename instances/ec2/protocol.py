"""The EC2 query protocol: form parameters in, XML documents out, EC2 error codes.

Nothing here decides anything about instances; ``actions`` does, through the services.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from xml.etree import ElementTree as ET

from django.core import signing

from adminvms_dashboard.paging import Keyset, rows_in_order

NAMESPACE = "http://ec2.amazonaws.com/doc/2016-11-15/"

# Parameters every request may carry besides the action's own: the query-string signature's among them.
COMMON = frozenset(
    {
        "Action",
        "Version",
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-Expires",
        "X-Amz-SignedHeaders",
        "X-Amz-Signature",
        "X-Amz-Security-Token",
    }
)


class Ec2Error(Exception):
    """An answer in EC2's error document: ``code`` as EC2 names it, with an HTTP 4xx status.

    (A 5xx would make clients retry, and an error body with 200 would read as success.)
    """

    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def invalid(message: str, code: str = "InvalidParameterValue") -> Ec2Error:
    return Ec2Error(code, message)


class Params:
    """The request's parameters, with EC2's 1-based list keys (``InstanceId.1``, ``Filter.2.Value.1``)."""

    def __init__(self, pairs: list[tuple[str, str]]):
        self.raw: dict[str, str] = {}
        for key, value in pairs:
            if "\x00" in key or "\x00" in value:
                raise invalid("Parameters may not hold NUL characters.")
            if key in self.raw:
                raise invalid(f"The parameter {key} is given more than once.")
            self.raw[key] = value

    @property
    def action(self) -> str:
        return self.raw.get("Action", "")

    def refuse_unsupported(self, accepted: frozenset[str]) -> None:
        """``UnsupportedOperation`` for a parameter the action does not honour (never silently ignored)."""
        for key in sorted(self.raw):
            if key not in COMMON and key.split(".", 1)[0] not in accepted:
                raise Ec2Error(
                    "UnsupportedOperation", f"The parameter {key.split('.', 1)[0]} is not supported by {self.action}."
                )

    def get(self, name: str, default: str | None = None) -> str | None:
        return self.raw.get(name, default)

    def require(self, name: str) -> str:
        value = self.raw.get(name)
        if value is None or value == "":
            raise Ec2Error("MissingParameter", f"The request must contain the parameter {name}.")
        return value

    def integer(self, name: str, *, default: int | None = None, low: int, high: int) -> int | None:
        value = self.raw.get(name)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            raise invalid(f"{name} must be a whole number, not '{value[:40]}'.") from None
        if not low <= number <= high:
            raise invalid(f"{name} must be between {low} and {high}.")
        return number

    def flag(self, name: str) -> bool:
        value = self.raw.get(name, "false").lower()
        if value not in {"true", "false"}:
            raise invalid(f"{name} must be true or false.")
        return value == "true"

    def members(self, prefix: str) -> list[str]:
        """``Prefix.1``, ``Prefix.2``… in order."""
        return [value for _, value in sorted(self._numbered(prefix, self.raw).items())]

    def structures(self, prefix: str) -> list[dict[str, str]]:
        """``Prefix.N.Field…`` → one dict per N (in order) of ``Field…`` → value."""
        groups: dict[int, dict[str, str]] = {}
        pattern = re.compile(rf"^{re.escape(prefix)}\.(\d+)\.(.+)$")
        for key, value in self.raw.items():
            if match := pattern.match(key):
                groups.setdefault(_index(key, match.group(1)), {})[match.group(2)] = value
            elif key == prefix or key.startswith(prefix + "."):
                raise invalid(f"The parameter {key} is malformed.")
        return [fields for _, fields in sorted(groups.items())]

    @staticmethod
    def _numbered(prefix: str, source: dict[str, str]) -> dict[int, str]:
        found = {}
        for key, value in source.items():
            head, _, index = key.rpartition(".")
            if key == prefix:
                raise invalid(f"The parameter {key} is a list: give {key}.1, {key}.2…")
            if head == prefix:
                found[_index(key, index)] = value
            elif key.startswith(prefix + "."):
                raise invalid(f"The parameter {key} is malformed.")
        return found

    def filters(self) -> dict[str, list[str]]:
        """``Filter.N.Name`` and ``Filter.N.Value.M`` → name → values."""
        found: dict[str, list[str]] = {}
        for fields in self.structures("Filter"):
            name = fields.pop("Name", "")
            if not name:
                raise Ec2Error("MissingParameter", "Every Filter needs a Name.")
            values = [value for _, value in sorted(Params._numbered("Value", fields).items())]
            if not values:
                raise invalid(f"The filter '{name}' needs at least one Value.")
            found.setdefault(name, []).extend(values)
        return found

    def tags(self, resource_type: str) -> dict[str, str]:
        """The tags of ``TagSpecification.N`` for ``resource_type`` (``instance``)."""
        tags: dict[str, str] = {}
        for fields in self.structures("TagSpecification"):
            kind = fields.pop("ResourceType", "")
            if kind != resource_type:
                raise invalid(f"Tags can be given for ResourceType '{resource_type}' only, not '{kind}'.")
            for tag in _regroup(fields, "Tag"):
                key = tag.get("Key", "")
                if not key:
                    raise Ec2Error("MissingParameter", "Every tag needs a Key.")
                if key in tags:
                    raise invalid(f"The tag '{key}' is given more than once.")
                tags[key] = tag.get("Value", "")
        return tags


def _index(key: str, text: str) -> int:
    if not (text.isascii() and text.isdigit() and len(text) <= 6) or int(text) < 1:
        raise invalid(f"The parameter {key} is malformed: list indexes start at 1.")
    return int(text)


def _regroup(fields: dict[str, str], prefix: str) -> list[dict[str, str]]:
    groups: dict[int, dict[str, str]] = {}
    for key, value in fields.items():
        head, _, rest = key.partition(".")
        index, _, field = rest.partition(".")
        if head != prefix or not field:
            raise invalid(f"The parameter {prefix}.{key} is not understood.")
        groups.setdefault(_index(key, index), {})[field] = value
    return [group for _, group in sorted(groups.items())]


# --- ids ---------------------------------------------------------------------------


def ec2_id(prefix: str, pk: uuid.UUID) -> str:
    """EC2-style id of one of our rows: the prefix and the row's UUID in hex (stable, reversible)."""
    return f"{prefix}-{pk.hex}"


def parse_id(prefix: str, value: str, code: str) -> uuid.UUID:
    """The UUID behind ``prefix-<hex>``; ``<code>.Malformed`` otherwise."""
    head, _, tail = value.partition("-")
    if head != prefix or not re.fullmatch(r"[0-9a-f]{32}", tail):
        raise Ec2Error(f"{code}.Malformed", f"Invalid id: '{value[:80]}' (expected {prefix}-<32 hex digits>).")
    return uuid.UUID(hex=tail)


def timestamp(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


# --- pagination ----------------------------------------------------------------------

_TOKEN_SALT = "adminvms.ec2.next-token"  # noqa: S105 (a signing salt, not a secret)


@dataclass(frozen=True)
class Page:
    rows: list
    next_token: str | None


def paginate(queryset, params: Params, *, what: str, default: int = 1000) -> Page:
    """Keyset pages by (created_at, pk): ``MaxResults`` (5 to 1000) and a signed, opaque ``NextToken``.

    A page never repeats a row of an earlier one, whatever was added meanwhile; the last page has no token.
    """
    size = params.integer("MaxResults", default=default, low=5, high=1000)
    queryset = queryset.order_by("created_at", "pk")
    if token := params.get("NextToken"):
        try:
            created, pk, kind = signing.loads(token, salt=_TOKEN_SALT)
        except (signing.BadSignature, ValueError, TypeError):
            raise invalid("The NextToken is not one this endpoint gave.") from None
        if kind != what:
            raise invalid("The NextToken belongs to another request.")
        queryset = queryset.filter(Keyset.of(queryset).after([datetime.fromisoformat(created), pk]))
    # The page's ids through the ordering's index, then their rows (and what they prefetch) by id.
    ids = list(queryset.values_list("pk", flat=True)[: size + 1])
    rows = rows_in_order(queryset, ids[:size])
    if len(ids) <= size or not rows:
        return Page(rows, None)
    last = rows[-1]
    return Page(rows, signing.dumps([last.created_at.isoformat(), str(last.pk), what], salt=_TOKEN_SALT))


# --- documents ------------------------------------------------------------------------


# What XML 1.0 cannot carry (control characters, lone surrogates): replaced, so that a
# name or an echoed parameter never makes a document clients cannot parse.
_NOT_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _text(value) -> str:
    return _NOT_XML.sub("\ufffd", str(value))


def _fill(element: ET.Element, value) -> None:
    if isinstance(value, dict):
        for key, child in value.items():
            if child is not None:
                _fill(ET.SubElement(element, key), child)
    elif isinstance(value, list | tuple):
        for child in value:
            _fill(ET.SubElement(element, "item"), child)
    elif isinstance(value, bool):
        element.text = "true" if value else "false"
    else:
        element.text = _text(value)


def document(action: str, request_id: str, body: dict) -> bytes:
    """``<ActionResponse xmlns=…><requestId/>…</ActionResponse>``; lists become ``item`` elements."""
    root = ET.Element(f"{action}Response", {"xmlns": NAMESPACE})
    ET.SubElement(root, "requestId").text = request_id
    _fill(root, body)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def error_document(error: Ec2Error, request_id: str) -> bytes:
    root = ET.Element("Response")
    entry = ET.SubElement(ET.SubElement(root, "Errors"), "Error")
    ET.SubElement(entry, "Code").text = error.code
    ET.SubElement(entry, "Message").text = _text(error.message)
    ET.SubElement(root, "RequestID").text = request_id
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)
