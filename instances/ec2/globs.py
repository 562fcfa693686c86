"""EC2's filter wildcards (``*`` any run, ``?`` one character, ``\\`` escapes the next) matched by the
database in linear time.

A wildcard became a regular expression before, and a backtracking engine (SQLite's, Python's) took
seconds for ``***…*#`` against a long name, each star doubling it: one request from any key held a
web thread. SQL's ``LIKE`` (PostgreSQL) and ``GLOB`` (SQLite) match without backtracking, runs of
stars are one star, and a value is at most ``MAX_LENGTH`` characters.
"""

from __future__ import annotations

from django.db.models import CharField, Lookup

MAX_LENGTH = 255  # the longest name a filter can match


def tokens(pattern: str) -> list[str]:
    """The pattern as ``*``, ``?`` and literal characters (each literal prefixed with ``=``), stars merged."""
    out: list[str] = []
    escaped = False
    for ch in pattern:
        if escaped:
            out.append("=" + ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch in "*?":
            if not (ch == "*" and out and out[-1] == "*"):
                out.append(ch)
        else:
            out.append("=" + ch)
    if escaped:
        out.append("=\\")  # a trailing backslash stands for itself
    return out


def as_like(pattern: str) -> str:
    """SQL ``LIKE … ESCAPE '\\'``: ``%`` and ``_``, the literal ``%``, ``_`` and ``\\`` escaped."""
    wild = {"*": "%", "?": "_"}
    return "".join(wild.get(t) or ("\\" + t[1] if t[1] in "%_\\" else t[1]) for t in tokens(pattern))


def as_glob(pattern: str) -> str:
    """SQLite's case-sensitive ``GLOB``: ``*`` and ``?`` as they are, literal ``*``, ``?`` and ``[`` in brackets."""
    return "".join(t if t in "*?" else (f"[{t[1]}]" if t[1] in "*?[" else t[1]) for t in tokens(pattern))


@CharField.register_lookup
class Ec2Glob(Lookup):
    """``field__ec2glob=pattern``: EC2's wildcard match, case-sensitive, on PostgreSQL and SQLite."""

    lookup_name = "ec2glob"

    def as_sql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        if connection.vendor == "sqlite":
            return f"{lhs} GLOB {rhs}", [*lhs_params, *(as_glob(p) for p in rhs_params)]
        return f"{lhs} LIKE {rhs} ESCAPE '\\'", [*lhs_params, *(as_like(p) for p in rhs_params)]
