"""The one writer of audit entries.

Entries are written in the caller's transaction: a change that is rolled back
leaves no entry, and a change that is committed always has one.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import models

from projects.models import Project

from .context import current_source
from .models import AuditEntry, Kind


@dataclass(frozen=True)
class Scope:
    """The project and group an entry belongs to (who may read it follows)."""

    project_id: int | None = None
    project_name: str = ""
    team_id: int | None = None

    @classmethod
    def of_project(cls, project_id: int | None) -> Scope:
        if project_id is None:
            return cls()
        row = Project.objects.filter(pk=project_id).values_list("name", "team_id").first()
        return cls(project_id, *row) if row else cls(project_id)

    @classmethod
    def of_team(cls, team_id: int | None) -> Scope:
        return cls(team_id=team_id)


def record(kind: Kind, action: str, obj: models.Model, scope: Scope, *, changes: dict | None = None,
           note: str = "", object_repr: str | None = None, actor=None) -> AuditEntry:
    """Write one entry about ``obj``; the actor (unless given), origin and
    source address come from the current request, if any."""
    source = current_source()
    actor = actor if actor is not None else source.user
    return AuditEntry.objects.create(
        actor=actor, actor_name=actor.get_username() if actor is not None else "",
        origin=source.origin, source_address=source.address,
        kind=kind, action=action,
        project_id=scope.project_id, project_name=scope.project_name, team_id=scope.team_id,
        object_type=obj._meta.label_lower, object_id=str(obj.pk or ""),
        object_repr=(str(obj) if object_repr is None else object_repr)[:200],
        changes=changes or {}, note=note,
    )
