"""Signal receivers that turn ticket events and configuration changes into
audit entries (audit logging is the one job receivers do in Walle: NetBox's
change log works the same way).

``TRACKED`` names the models by label and is resolved once apps are ready;
a label whose app or model is not installed is skipped, so models that other
apps add later are tracked as soon as they exist.
"""

from __future__ import annotations

from functools import partial

from django.apps import apps
from django.conf import settings
from django.db import models
from django.db.models.signals import m2m_changed, post_save, pre_delete, pre_save
from guardian.models.models import BaseGenericObjectPermission, BaseObjectPermission

from accounts.models import Team
from accounts.permissions import project_of
from projects.models import Host, Project
from releases.models import TicketAction

from .changes import diff, names
from .models import Change, Kind
from .recorder import Scope, record

TRACKED: list[tuple[str, Kind]] = [
    ("projects.Project", Kind.PROJECT),
    ("projects.Host", Kind.HOST),
    ("projects.Environment", Kind.ENVIRONMENT),
    ("projects.DeployKey", Kind.DEPLOY_KEY),
    ("projects.ProjectSecret", Kind.SECRET),
    ("accounts.Team", Kind.GROUP),
    ("accounts.Membership", Kind.MEMBER),
    ("accounts.ApiToken", Kind.TOKEN),
    (settings.AUTH_USER_MODEL, Kind.USER),
    ("accounts.UserAccount", Kind.USER),  # the same users, saved through their admin page (a proxy)
    ("guardian.UserObjectPermission", Kind.GRANT),
    ("guardian.GroupObjectPermission", Kind.GRANT),
    ("notifications.Channel", Kind.CHANNEL),
    ("webhooks.ProjectWebhook", Kind.WEBHOOK),
    ("projects.DeployWindow", Kind.DEPLOY_WINDOW),
    ("projects.DeployFreeze", Kind.DEPLOY_FREEZE),
]

# Ticket event actions about the project lock rather than the ticket itself.
LOCK_ACTIONS = {TicketAction.RELEASE_LOCK, TicketAction.LOCK_TAKEN_OVER}


def _grant_scope(grant: BaseGenericObjectPermission) -> list[Scope]:
    if grant.content_type.model_class() is Project:
        return [Scope.of_project(int(grant.object_pk))]
    return [Scope()]


def scopes_of(instance: models.Model) -> list[Scope]:
    """The projects (or group) an entry about ``instance`` belongs to. A host
    shared by several projects gets one entry in each project's log; a host no
    project uses, an environment or a token: platform admins only."""
    if isinstance(instance, Project):
        return [Scope(instance.pk, instance.name, instance.team_id)]
    if isinstance(instance, Host):
        rows = instance.projects.values_list("pk", "name", "team_id") if instance.pk else []
        return [Scope(*row) for row in rows] or [Scope()]
    if isinstance(instance, Team):
        return [Scope(team_id=instance.pk)]
    if isinstance(instance, BaseGenericObjectPermission):
        return _grant_scope(instance)
    if getattr(instance, "project_id", None) is not None:
        return [Scope.of_project(instance.project_id)]
    if getattr(type(instance), "project_path", None):
        return [Scope.of_project(project_of(instance).pk)]
    return [Scope.of_team(getattr(instance, "team_id", None))]


def _describe(instance: models.Model) -> str:
    if isinstance(instance, BaseObjectPermission):
        holder = getattr(instance, "user", None) or getattr(instance, "group", None)
        return f"{instance.permission.codename} → {holder}"
    return str(instance)


def _before_save(kind: Kind, sender, instance, raw=False, **kwargs) -> None:
    if raw or instance.pk is None:
        return
    instance._audit_before = sender._default_manager.filter(pk=instance.pk).first()


def _after_save(kind: Kind, sender, instance, created, raw=False, **kwargs) -> None:
    if raw:
        return
    before = None if created else instance.__dict__.pop("_audit_before", None)
    changes = diff(before, instance)
    if before is not None and not changes:
        return  # saved unchanged
    action = Change.CHANGED if before is not None else Change.CREATED
    for scope in scopes_of(instance):
        record(kind, action, instance, scope, changes=changes, object_repr=_describe(instance))


def _before_delete(kind: Kind, sender, instance, **kwargs) -> None:
    # Before, not after: a host's links to its projects are gone by then.
    changes = diff(instance, None)
    for scope in scopes_of(instance):
        record(kind, Change.DELETED, instance, scope, changes=changes, object_repr=_describe(instance))


def _owners(model, field, instance, reverse: bool, pk_set) -> list[models.Model]:
    """The instances of the tracked ``model`` whose ``field`` a change touches."""
    if not reverse:
        return [instance]
    if pk_set is None:  # clear() from the other side
        return list(model._default_manager.filter(**{field.name: instance}))
    return list(model._default_manager.filter(pk__in=pk_set))


def _m2m_changed(kind: Kind, owner_model, field, sender, instance, action, reverse, pk_set, **kwargs) -> None:
    """One entry per owner and call, with the whole list before and after."""
    if action.startswith("pre_"):
        owners = _owners(owner_model, field, instance, reverse, pk_set)
        instance._audit_m2m = [(owner, names(getattr(owner, field.name).all())) for owner in owners]
        return
    for owner, before in instance.__dict__.pop("_audit_m2m", []):
        after = names(getattr(owner, field.name).all())
        if after == before:
            continue
        for scope in scopes_of(owner):
            record(kind, Change.CHANGED, owner, scope, changes={field.name: [before, after]})


def _ticket_event_saved(sender, instance, created, raw=False, **kwargs) -> None:
    if raw or not created:
        return
    ticket = instance.ticket
    moved = {"status": [instance.from_status, instance.to_status]} if instance.from_status != instance.to_status else {}
    record(
        Kind.LOCK if instance.action in LOCK_ACTIONS else Kind.TICKET, instance.action, ticket,
        Scope.of_project(ticket.project_id), changes=moved, note=instance.note,
        object_repr=f"#{ticket.pk} {ticket.title}", actor=instance.actor,
    )


def track(model: type[models.Model], kind: Kind) -> None:
    uid = f"audit-{model._meta.label_lower}"
    pre_save.connect(partial(_before_save, kind), sender=model, weak=False, dispatch_uid=f"{uid}-pre")
    post_save.connect(partial(_after_save, kind), sender=model, weak=False, dispatch_uid=f"{uid}-post")
    pre_delete.connect(partial(_before_delete, kind), sender=model, weak=False, dispatch_uid=f"{uid}-del")
    for field in model._meta.many_to_many:
        through = field.remote_field.through
        if through._meta.auto_created:
            m2m_changed.connect(partial(_m2m_changed, kind, model, field), sender=through, weak=False,
                                dispatch_uid=f"{uid}-{field.name}")


def tracked_models() -> list[tuple[type[models.Model], Kind]]:
    found = []
    for label, kind in TRACKED:
        try:
            found.append((apps.get_model(label), kind))
        except LookupError:
            continue  # not installed (yet)
    return found


def connect_all() -> None:
    for model, kind in tracked_models():
        track(model, kind)
    post_save.connect(_ticket_event_saved, sender="releases.TicketEvent", dispatch_uid="audit-ticket-event")
