"""Pages of a list, for the REST API and the HTML tables alike.

``Paginator`` reads a page as its ids, then their rows; ``Keyset`` turns the ordering of a queryset and
the values of a row into the condition "after this row", which the REST API's ``next`` links carry
(``adminvms_dashboard.api.Pagination``), so that following them never reads the rows before the page.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from django.conf import settings
from django.core import paginator, signing
from django.core.cache import cache
from django.core.exceptions import EmptyResultSet, ValidationError
from django.db.models import Q, QuerySet
from django.db.models.constants import LOOKUP_SEP
from django.utils.functional import cached_property


class Paginator(paginator.Paginator):
    """Django's paginator, reading a page of a queryset in two steps: the ids of the page, then their rows.

    The first query reads only what the ordering's index holds, so a deep page skips the rows before
    it in the index instead of fetching them from the table; the second reads the page's rows (and
    what they prefetch) by primary key. Querysets with DISTINCT are paged as Django does.

    A list of at least ``COUNTS_EXACT_BELOW`` rows keeps its count for ``COUNTS_INTERVAL`` seconds (in
    this process's cache, by the count's SQL): counting 100,000 rows on every page costs more than the
    page; a shorter list is counted every time.
    """

    @cached_property
    def count(self) -> int:
        rows = self.object_list
        if not isinstance(rows, QuerySet):
            return super().count
        try:
            sql, params = rows.order_by().query.sql_with_params()
        except EmptyResultSet:
            return 0
        key = "adminvms.paging.count:" + hashlib.sha256(repr((sql, params)).encode()).hexdigest()
        if (count := cache.get(key)) is None:
            count = rows.count()
            if count >= settings.ADMINVMS["COUNTS_EXACT_BELOW"]:
                cache.set(key, count, settings.ADMINVMS["COUNTS_INTERVAL"])
        return count

    def page(self, number):
        rows = self.object_list
        if not isinstance(rows, QuerySet) or rows.query.distinct:
            return super().page(number)
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        top = bottom + self.per_page
        if top + self.orphans >= self.count:
            top = self.count
        return self._get_page(rows_in_order(rows, rows.values_list("pk", flat=True)[bottom:top]), number, self)


def rows_in_order(rows: QuerySet, ids) -> list:
    """The rows of ``rows`` with these primary keys, in the order of ``ids``, read in one query (plus what
    ``rows`` prefetches)."""
    ids = list(ids)
    found = {row.pk: row for row in rows.order_by().filter(pk__in=ids)}
    return [found[pk] for pk in ids if pk in found]


class InvalidCursor(ValueError):
    """A cursor that was not made here, or for another ordering of the list."""


@dataclass(frozen=True)
class Keyset:
    """The ordering of a queryset as (field path, descending) pairs, ending with the primary key."""

    fields: tuple[tuple[str, bool], ...]

    @classmethod
    def of(cls, queryset: QuerySet) -> Keyset | None:
        """The keyset of ``queryset``'s ordering; ``None`` when it cannot be one (an expression, or an
        ordering that does not end with the primary key, which alone makes every position unique)."""
        ordering = queryset.query.order_by
        if not ordering or not all(isinstance(o, str) and o.lstrip("-") for o in ordering):
            return None
        fields = tuple((o.lstrip("-"), o.startswith("-")) for o in ordering)
        if fields[-1][0] not in ("pk", queryset.model._meta.pk.name):
            return None
        return cls(fields)

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.fields]

    def values_of(self, row) -> list:
        """The ordering values of a model instance, following relations (``category__slug``)."""
        values = []
        for name in self.names:
            value = row
            for part in name.split(LOOKUP_SEP):
                value = getattr(value, part)
            values.append(value)
        return values

    def after(self, values: list) -> Q:
        """Rows that come after the row with these ordering values: (a > x) or (a = x and b > y) or ...
        (``<`` for descending fields), and the first field's bound alone, which lets an index on it
        start the scan at the row."""
        condition = Q(pk__in=[])
        for i, (name, descending) in enumerate(self.fields):
            step = Q(**{f"{name}__{'lt' if descending else 'gt'}": values[i]})
            for earlier, value in zip(self.names[:i], values[:i], strict=True):
                step &= Q(**{earlier: value})
            condition |= step
        first, descending = self.fields[0]
        return Q(**{f"{first}__{'lte' if descending else 'gte'}": values[0]}) & condition

    # A cursor is signed: it names the ordering it continues, the values of the row before the page, the
    # page's number and the count of the list when its first page was read.
    _SALT = "adminvms.paging.cursor"

    def cursor(self, values: list, *, number: int, count: int) -> str:
        encoded = [v.isoformat() if hasattr(v, "isoformat") else str(v) for v in values]
        return signing.dumps({"o": self.names, "d": [d for _, d in self.fields], "v": encoded, "n": number, "c": count},
                             salt=self._SALT, compress=True)  # fmt: skip

    def read(self, cursor: str, model) -> tuple[list, int, int]:
        """The values, page number and count a cursor of this keyset carries."""
        try:
            data = signing.loads(cursor, salt=self._SALT)
            if data["o"] != self.names or data["d"] != [d for _, d in self.fields]:
                raise InvalidCursor("This cursor belongs to another ordering of the list; start from its first page.")
            values = [_field(model, name).to_python(v) for name, v in zip(self.names, data["v"], strict=True)]
            return values, int(data["n"]), int(data["c"])
        except InvalidCursor:
            raise
        except (signing.BadSignature, KeyError, TypeError, ValueError, ValidationError) as exc:
            raise InvalidCursor(
                "Invalid cursor; follow a next link of the list, or start from its first page."
            ) from exc


def _field(model, path: str):
    """The model field a lookup path ends at (``category__slug`` → InstanceCategory.slug)."""
    field = None
    for part in path.split(LOOKUP_SEP):
        field = model._meta.pk if part == "pk" else model._meta.get_field(part)
        model = field.related_model or model
    return field
