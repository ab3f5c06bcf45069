"""Reading the audit log: the visible entries and the filters, shared by the
page, its CSV export and the API, so a filter means the same in all three."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import QuerySet

from accounts.permissions import visible_audit_entries

from .models import AuditEntry


@dataclass(frozen=True)
class AuditFilter:
    project_id: int | None = None
    actor: str = ""
    kind: str = ""
    since: datetime | None = None
    until: datetime | None = None


def entries_for(user) -> QuerySet[AuditEntry]:
    """What ``user`` may read, newest first. Entries carry copies of the names
    they show, so listing them joins nothing."""
    return visible_audit_entries(user, AuditEntry.objects.all()).order_by("-created_at", "-id")


def filter_entries(entries: QuerySet[AuditEntry], wanted: AuditFilter) -> QuerySet[AuditEntry]:
    if wanted.project_id is not None:
        entries = entries.filter(project_id=wanted.project_id)
    if wanted.actor:
        entries = entries.filter(actor_name__iexact=wanted.actor)
    if wanted.kind:
        entries = entries.filter(kind=wanted.kind)
    if wanted.since is not None:
        entries = entries.filter(created_at__gte=wanted.since)
    if wanted.until is not None:
        entries = entries.filter(created_at__lte=wanted.until)
    return entries
