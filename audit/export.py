"""The audit log as CSV, streamed row by row."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator

from django.db.models import QuerySet
from django.utils import timezone

from .changes import as_text
from .models import AuditEntry

HEADER = [
    "time", "actor", "origin", "source address", "kind", "action", "project", "object type", "object id",
    "object", "changes", "note",
]
# A spreadsheet runs a cell that starts with one of these as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe(cell: object) -> str:
    text = "" if cell is None else str(cell)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def row(entry: AuditEntry) -> list[str]:
    return [safe(cell) for cell in (
        timezone.localtime(entry.created_at).isoformat(), entry.actor_name, entry.origin, entry.source_address,
        entry.kind, entry.action, entry.project_name, entry.object_type, entry.object_id, entry.object_repr,
        as_text(entry.readable_changes), entry.note,
    )]


class _Echo:
    """A file-like object whose write returns the line, for streaming."""

    def write(self, value: str) -> str:
        return value


def lines(entries: QuerySet[AuditEntry] | Iterable[AuditEntry]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(HEADER)
    source = entries.iterator(chunk_size=500) if isinstance(entries, QuerySet) else entries
    for entry in source:
        yield writer.writerow(row(entry))
