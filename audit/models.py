"""The audit log: one append-only row per ticket event or configuration change.

Rows are written only by :mod:`audit.recorder`. They keep copies of what they
name (actor, project, object), so they outlive what they describe: their
foreign keys have no database constraint and do nothing on delete (a cascade
or SET NULL would have to change or delete a row, which the database refuses).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.models import Team
from projects.models import Project

from .changes import for_reader


class AppendOnlyError(Exception):
    """Raised on any attempt to change or delete an audit entry."""


APPEND_ONLY = "Audit entries are append-only: they are never changed or deleted."


class Kind(models.TextChoices):
    """What an entry is about; the page and API filter on it."""

    TICKET = "ticket", _("Ticket")
    LOCK = "lock", _("Project lock")
    PROJECT = "project", _("Project")
    HOST = "host", _("Host")
    ENVIRONMENT = "environment", _("Environment")
    GROUP = "group", _("Group")
    MEMBER = "member", _("Member and role")
    DEPLOY_KEY = "deploy_key", _("Deploy key")
    SECRET = "secret", _("Project secret")
    GRANT = "grant", _("Grant")
    USER = "user", _("User account")
    TOKEN = "token", _("API token")
    CHANNEL = "channel", _("Notification channel")
    WEBHOOK = "webhook", _("Git webhook")
    DEPLOY_WINDOW = "deploy_window", _("Deploy window")
    DEPLOY_FREEZE = "deploy_freeze", _("Deploy freeze")


class Change(models.TextChoices):
    """The action of a configuration entry (ticket entries keep the ticket event's action)."""

    CREATED = "created", _("created")
    CHANGED = "changed", _("changed")
    DELETED = "deleted", _("deleted")


class Origin(models.TextChoices):
    WEB = "web", _("Web or API request")
    WORKER = "worker", _("Worker or command line")


class AuditEntryQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnlyError(APPEND_ONLY)

    def delete(self):
        raise AppendOnlyError(APPEND_ONLY)

    def bulk_update(self, objs, fields, batch_size=None):
        raise AppendOnlyError(APPEND_ONLY)


def _loose_fk(model, **kwargs) -> models.ForeignKey:
    """A reference that survives its target: no constraint, no cascade."""
    return models.ForeignKey(
        model, null=True, blank=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+", **kwargs
    )


class AuditEntry(models.Model):
    created_at = models.DateTimeField(_("time"), default=timezone.now)
    actor = _loose_fk(settings.AUTH_USER_MODEL, verbose_name=_("actor"))
    actor_name = models.CharField(_("actor"), max_length=150, blank=True)
    origin = models.CharField(_("origin"), max_length=10, choices=Origin.choices)
    source_address = models.CharField(_("source address"), max_length=64, blank=True)
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices)
    action = models.CharField(_("action"), max_length=40)
    project = _loose_fk(Project, verbose_name=_("project"))
    project_name = models.CharField(_("project"), max_length=100, blank=True)
    team = _loose_fk(Team, verbose_name=_("group"))
    object_type = models.CharField(_("object type"), max_length=100)
    object_id = models.CharField(_("object id"), max_length=64, blank=True)
    object_repr = models.CharField(_("object"), max_length=200, blank=True)
    # field -> [before, after], or "changed" for a secret (see audit.changes).
    changes = models.JSONField(_("changes"), default=dict, blank=True)
    note = models.TextField(_("note"), blank=True)

    objects = AuditEntryQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("audit entry")
        verbose_name_plural = _("audit entries")
        indexes = [
            models.Index(fields=["created_at"], name="audit_created"),
            models.Index(fields=["project", "created_at"], name="audit_project_created"),
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor_name or '-'} {self.kind} {self.action} {self.object_repr}"

    def save(self, *args, **kwargs) -> None:
        if not self._state.adding:
            raise AppendOnlyError(APPEND_ONLY)
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError(APPEND_ONLY)

    @property
    def readable_changes(self) -> dict:
        """``changes`` for the reader: recorded choice labels in their language."""
        return for_reader(self.object_type, self.changes)

    @property
    def action_display(self) -> str:
        """A configuration action's label, or a ticket event's."""
        if self.action in Change.values:
            return Change(self.action).label
        from releases.models import event_action_label  # audit records releases' events; imported late

        return event_action_label(self.action)
