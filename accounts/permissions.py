"""The permission policy: the only place that decides who may do what.

Admin, HTML views, the API and the workflow all call :func:`can`, :func:`require`
and :func:`visible`. A user's power on a project comes from

* being a superuser (platform admin),
* their role in the project's team (``Membership``), or
* a guardian object permission on that one project (``projects.walle_<action>``),
  granted by a Maintainer/Owner without making them a team member.

Everything under a project (tickets, runs, logs, releases, hosts) takes its
permissions from the project, so guardian rows exist only for projects.
"""

from __future__ import annotations

from enum import StrEnum
from functools import reduce
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db.models import F, Model, Q, QuerySet
from django.http import Http404
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from guardian.shortcuts import get_objects_for_user

from .models import Membership, Role


class Action(StrEnum):
    # Project-level actions (also the guardian codenames, prefixed walle_).
    VIEW = "view"  # see projects and tickets with their status
    VIEW_DETAILS = "view_details"  # config, hosts, commits, deploy logs
    SUBMIT = "submit"  # open a ticket
    DEPLOY_OWN = "deploy_own"
    APPROVE = "approve"  # approve or reject
    DEPLOY_ANY = "deploy_any"
    ROLLBACK = "rollback"
    CONFIGURE = "configure"  # project/host config, config check, release a lock
    MANAGE = "manage"  # members and roles, delete projects
    # Ticket-level actions, resolved from the above plus ownership.
    EDIT = "edit"
    CANCEL = "cancel"  # a waiting rollout: as PROMOTE, since cancelling it switches hosts back
    DEPLOY = "deploy"
    # Rejecting takes the right to approve, but not the approver's one vote:
    # who approved a version may still reject it.
    REJECT = "reject"
    PROMOTE = "promote"  # let a waiting rollout switch its next batch: whoever may deploy the ticket


PROJECT_ACTIONS = (
    Action.VIEW, Action.VIEW_DETAILS, Action.SUBMIT, Action.DEPLOY_OWN, Action.APPROVE,
    Action.DEPLOY_ANY, Action.ROLLBACK, Action.CONFIGURE, Action.MANAGE,
)

# What each grantable action lets its holder do, as the grants page offers it.
ACTION_LABELS: dict[Action, Promise] = {
    Action.VIEW: gettext_lazy("view: see the project and its tickets"),
    Action.VIEW_DETAILS: gettext_lazy("view details: config, hosts, commits and logs"),
    Action.SUBMIT: gettext_lazy("submit: open tickets; edit or cancel own"),
    Action.DEPLOY_OWN: gettext_lazy("deploy own: deploy own approved tickets"),
    Action.APPROVE: gettext_lazy("approve: approve or reject tickets"),
    Action.DEPLOY_ANY: gettext_lazy("deploy any: deploy any approved ticket"),
    Action.ROLLBACK: gettext_lazy("rollback: roll back"),
    Action.CONFIGURE: gettext_lazy("configure: the project, the check, a lock"),
    Action.MANAGE: gettext_lazy("manage: members; delete the project"),
}

# The lowest role that grants each project-level action.
MIN_ROLE: dict[Action, Role] = {
    Action.VIEW: Role.GUEST,
    Action.VIEW_DETAILS: Role.REPORTER,
    Action.SUBMIT: Role.DEVELOPER,
    Action.DEPLOY_OWN: Role.DEVELOPER,
    Action.APPROVE: Role.MAINTAINER,
    Action.DEPLOY_ANY: Role.MAINTAINER,
    Action.ROLLBACK: Role.MAINTAINER,
    Action.CONFIGURE: Role.MAINTAINER,
    Action.MANAGE: Role.OWNER,
}

def perm_codename(action: Action) -> str:
    return f"walle_{action.value}"


def perm_name(action: Action) -> str:
    return f"projects.{perm_codename(action)}"


def _granting_actions(action: Action) -> list[Action]:
    """Object grants that imply ``action`` (a grant to deploy lets you see)."""
    if action == Action.VIEW:
        return list(PROJECT_ACTIONS)
    if action == Action.VIEW_DETAILS:
        return [a for a in PROJECT_ACTIONS if a != Action.VIEW]
    return [action]


def project_of(obj: Any):
    """The project an object belongs to: a Project itself, or any model that
    declares ``project_path`` (the lookup from it to its project, e.g.
    ``"run__ticket__project"``)."""
    from projects.models import Project

    if isinstance(obj, Project):
        return obj
    path = getattr(type(obj), "project_path", None)
    if path is None:
        raise TypeError(f"{type(obj).__name__} does not declare how it belongs to a project (project_path)")
    return reduce(getattr, path.split("__"), obj)


def role_in(user, project) -> Role | None:
    if not user.is_authenticated:
        return None
    role = (
        Membership.objects.filter(user=user, team_id=project.team_id).values_list("role", flat=True).first()
    )
    return Role(role) if role is not None else None


def has_project_action(user, action: Action, project) -> bool:
    if not user.is_authenticated or not user.is_active:
        return False
    if user.is_superuser:
        return True
    role = role_in(user, project)
    if role is not None and role >= MIN_ROLE[action]:
        return True
    return any(user.has_perm(perm_name(a), project) for a in _granting_actions(action))


def _is_own(user, ticket) -> bool:
    return ticket.author_id == user.pk


def _is_self_approval(user, ticket, project) -> bool:
    # Separation of duties applies to superusers too.
    return getattr(ticket, "author_id", None) == user.pk and not project.environment.allow_self_approval


def has_approved(user, ticket) -> bool:
    """Has ``user`` approved the ticket's current version already? One person
    counts once, however many approvals the environment asks for."""
    approvals = getattr(ticket, "approvals", None)  # a project has none
    return approvals is not None and approvals.filter(approver_id=user.pk, version=ticket.version).exists()


def can(user, action: Action | str, obj: Model) -> bool:
    """May ``user`` do ``action`` on ``obj`` (a project, or anything under one)?"""
    action = Action(action)
    project = project_of(obj)
    if action in PROJECT_ACTIONS and action != Action.APPROVE:
        return has_project_action(user, action, project)
    ticket = obj
    if action in (Action.APPROVE, Action.REJECT):
        if not has_project_action(user, Action.APPROVE, project) or _is_self_approval(user, ticket, project):
            return False
        return action == Action.REJECT or not has_approved(user, ticket)
    if action == Action.EDIT:
        return _is_own(user, ticket) and has_project_action(user, Action.SUBMIT, project)
    if action == Action.CANCEL and getattr(ticket, "is_waiting", False):
        # Cancelling a rollout that waits for a promote is no longer withdrawing
        # a request: the worker switches production hosts back. It is the other
        # answer to "Promote?", so it takes the right to promote (whoever may
        # deploy the ticket), not the right to cancel a ticket that never ran
        # (an approver's grant alone, or a submitter without the right to deploy).
        action = Action.PROMOTE
    if action == Action.CANCEL:
        return (_is_own(user, ticket) and has_project_action(user, Action.SUBMIT, project)) or (
            has_project_action(user, Action.APPROVE, project)
        )
    if action in (Action.DEPLOY, Action.PROMOTE):
        return has_project_action(user, Action.DEPLOY_ANY, project) or (
            _is_own(user, ticket) and has_project_action(user, Action.DEPLOY_OWN, project)
        )
    raise ValueError(f"unknown action {action}")


class AlreadyApproved(PermissionDenied):
    """A second approval of the same version by the same person."""


def require(user, action: Action | str, obj: Model) -> None:
    """Raise PermissionDenied with a reason unless :func:`can` allows it."""
    if not can(user, action, obj):
        reason = denial_reason(user, action, obj)
        if Action(action) == Action.APPROVE and has_approved(user, obj):
            raise AlreadyApproved(reason)
        raise PermissionDenied(reason)


def denial_reason(user, action: Action | str, obj: Model) -> str:
    """Why ``user`` may not do ``action`` on ``obj``, in words for them: the
    API's errors and the disabled buttons of the pages say the same."""
    action = Action(action)
    project = project_of(obj)
    group = {"group": project.team.name} if project is not None and project.team_id else {"group": "?"}
    if action in (Action.APPROVE, Action.REJECT) and has_project_action(user, Action.APPROVE, project):
        if _is_self_approval(user, obj, project):
            return _("You submitted this ticket; in this environment someone else must approve it.")
        return _("You have already approved this ticket; it needs another approver.")
    if action in (Action.APPROVE, Action.REJECT):
        return _("Only Maintainers and Owners of %(group)s approve its tickets.") % group
    if action == Action.EDIT and getattr(obj, "author_id", None) != user.pk:
        return _("Only the submitter may edit a ticket.")
    if action == Action.DEPLOY:
        return _("Only its submitter or a Maintainer of %(group)s deploys this ticket.") % group
    if action == Action.PROMOTE:
        return _("Only its submitter or a Maintainer of %(group)s promotes this ticket's rollout.") % group
    if action == Action.CANCEL and getattr(obj, "is_waiting", False):
        return _("Only its submitter or a Maintainer of %(group)s cancels this ticket's rollout.") % group
    if action == Action.ROLLBACK:
        return _("Only Maintainers and Owners of %(group)s roll back.") % group
    return _("You do not have permission to %(action)s here.") % {"action": action.value.replace("_", " ")}


def visible_projects(user, action: Action | str = Action.VIEW) -> QuerySet:
    """Projects on which ``user`` may do a project-level ``action``."""
    from projects.models import Project

    action = Action(action)
    if not user.is_authenticated or not user.is_active:
        return Project.objects.none()
    if user.is_superuser:
        return Project.objects.all()
    roles = [r for r in Role if r >= MIN_ROLE[action]]
    by_role = Q(team__memberships__user=user, team__memberships__role__in=roles)
    # accept_global_perms=False: a stray global permission must not expose
    # every project (guardian's default would).
    granted = get_objects_for_user(
        user, [perm_name(a) for a in _granting_actions(action)], Project,
        any_perm=True, accept_global_perms=False, with_superuser=False,
    )
    return Project.objects.filter(by_role | Q(pk__in=granted.values("pk"))).distinct()


def visible(user, queryset: QuerySet, action: Action | str = Action.VIEW) -> QuerySet:
    """Filter any queryset of project-owned objects down to what ``user`` may see."""
    from projects.models import Host, Project

    if is_platform_admin(user):
        return queryset  # everything; a filter on all projects would only slow the query down
    projects = visible_projects(user, action)
    model = queryset.model
    if model is Project:
        return queryset.filter(pk__in=projects.values("pk"))
    if model is Host:
        return queryset.filter(projects__in=projects.values("pk")).distinct()
    lookup = getattr(model, "project_path", None)
    if lookup is None:
        raise TypeError(f"visible() does not know how {model._meta.label} belongs to a project (project_path)")
    return queryset.filter(**{f"{lookup}__in": projects.values("pk")})


def approvable(user, tickets: QuerySet) -> QuerySet:
    """The tickets ``user`` may approve, in one query: what :func:`can` says
    for APPROVE on each (the project-level right, separation of duties where
    the environment asks for it, not approved by them already), without a
    check per ticket."""
    # One filter() call: approver and version are of the same approval row.
    mine = tickets.filter(approvals__approver_id=user.pk, approvals__version=F("version")).values("pk")
    return visible(user, tickets, Action.APPROVE).exclude(
        author_id=user.pk, project__environment__allow_self_approval=False
    ).exclude(pk__in=mine)


def get_visible_or_404(user, queryset: QuerySet, pk: Any, action: Action | str = Action.VIEW):
    """Fetch one object the user may see; 404 (not 403) so ids leak nothing."""
    try:
        return visible(user, queryset, action).get(pk=pk)
    except (queryset.model.DoesNotExist, ValueError, TypeError) as exc:
        raise Http404(_("Not found.")) from exc


def is_maintainer_somewhere(user) -> bool:
    """Maintainers of any team may register hosts for their projects."""
    if user.is_authenticated and user.is_superuser:
        return True
    return user.is_authenticated and (
        Membership.objects.filter(user=user, role__gte=Role.MAINTAINER).exists()
        or visible_projects(user, Action.CONFIGURE).exists()
    )


def can_change_host(user, host) -> bool:
    """A host shared by projects may be changed only by who configures them all."""
    if user.is_authenticated and user.is_superuser:
        return True
    projects = list(host.projects.all()) if host.pk else []
    if not projects:
        return is_maintainer_somewhere(user)
    return all(can(user, Action.CONFIGURE, p) for p in projects)


def can_manage_team(user, team) -> bool:
    if user.is_authenticated and user.is_superuser:
        return True
    return user.is_authenticated and Membership.objects.filter(
        user=user, team=team, role__gte=Role.OWNER
    ).exists()


# --- What only platform admins do -----------------------------------------------
# Environments (their approval rules bind every group), deploy keys (a key logs
# in wherever it is trusted), API tokens (issued for anyone), deleting hosts
# (shared between groups' projects), creating and deleting groups, and the
# admin's bulk "delete selected" (others delete one object at a time, each
# checked with can()). The admin asks is_platform_admin() for each of them.


def is_platform_admin(user) -> bool:
    return user.is_authenticated and user.is_active and user.is_superuser


def can_anywhere(user, action: Action | str) -> bool:
    """May ``user`` do a project-level ``action`` on at least one project?"""
    return visible_projects(user, action).exists()


def visible_teams(user) -> QuerySet:
    """Teams listed to ``user``: all for platform admins, else those they belong to."""
    from .models import Team

    if is_platform_admin(user):
        return Team.objects.all()
    if not user.is_authenticated:
        return Team.objects.none()
    return Team.objects.filter(memberships__user=user).distinct()


def teams_user_maintains(user) -> QuerySet:
    """Teams in which ``user`` is a Maintainer or Owner (all, for platform admins)."""
    from .models import Team

    if user.is_authenticated and user.is_superuser:
        return Team.objects.all()
    if not user.is_authenticated:
        return Team.objects.none()
    ids = Membership.objects.filter(user=user, role__gte=Role.MAINTAINER).values("team_id")
    return Team.objects.filter(pk__in=ids)


def _stored_project(project):
    """The project as saved in the database (``None`` for a new one), so checks
    never trust in-memory edits a form has already applied."""
    from projects.models import Project

    if project is None or project.pk is None:
        return None
    return Project.objects.filter(pk=project.pk).first()


def _may_move_out(user, project) -> bool:
    """Moving a project hands it (hosts, hooks, secrets, tickets) to another
    group's people and keys, so it takes a role that holds MANAGE in its current
    group: membership, never a per-project grant."""
    role = role_in(user, project) if user.is_active else None
    return role is not None and role >= MIN_ROLE[Action.MANAGE]


def teams_for_project(user, project=None) -> QuerySet:
    """The groups ``user`` may put ``project`` (None: a new one) in. Platform
    admins: any. A new project: the groups they maintain. An existing one: its
    current group if they may CONFIGURE it (so a per-project grant can save it
    unmoved), plus the groups they maintain if its current group lets them move
    it away (never through a grant)."""
    from .models import Team

    if is_platform_admin(user):
        return Team.objects.all()
    maintained = teams_user_maintains(user)
    stored = _stored_project(project)
    if stored is None:
        return maintained
    keep = Q(pk=stored.team_id) if can(user, Action.CONFIGURE, stored) else Q(pk__in=[])
    if _may_move_out(user, stored):
        keep |= Q(pk__in=maintained.values("pk"))
    return Team.objects.filter(keep)


def can_put_project_in_team(user, team, project=None) -> bool:
    return team is None or teams_for_project(user, project).filter(pk=team.pk).exists()


def kept_deploy_key_id(user, project) -> int | None:
    """The project's current key, which ``user`` may keep while it stays in its
    group (an unchanged project can always be saved)."""
    stored = _stored_project(project)
    if stored is not None and stored.deploy_key_id is not None and can(user, Action.CONFIGURE, stored):
        return stored.deploy_key_id
    return None


def can_change_project_environment(user, project) -> bool:
    """Moving an existing project to another environment changes its approval
    rules (production -> test drops separation of duties), so only those who
    configure environments may; a new project may start in any environment."""
    if project is None or project.pk is None:
        return True
    return is_platform_admin(user)


def can_use_deploy_key(user, key, team, project=None) -> bool:
    """May ``user`` save ``project`` in ``team`` with ``key`` (None: the
    group's own key)? Only platform admins give a project a key that is not
    its group's; an unchanged project keeps its key while it stays put."""
    if key is None or is_platform_admin(user):
        return True
    if team is None:
        return False
    stored = _stored_project(project)
    if stored is not None and stored.team_id == team.pk and kept_deploy_key_id(user, stored) == key.pk:
        return True
    return key.team_id == team.pk and can_put_project_in_team(user, team, project)


def visible_deploy_keys(user) -> QuerySet:
    """Keys listed to ``user``: all for platform admins; else their groups'
    keys and those of projects they configure (public halves only, anyway)."""
    from projects.models import DeployKey

    if is_platform_admin(user):
        return DeployKey.objects.all()
    used = visible_projects(user, Action.CONFIGURE).filter(deploy_key__isnull=False).values("deploy_key")
    return DeployKey.objects.filter(Q(team__in=teams_user_maintains(user).values("pk")) | Q(pk__in=used))


# --- Deploy windows -----------------------------------------------------------------
# Deploying outside an environment's deploy window (or in a freeze) is an
# Owner's call: MANAGE on the project, the right that also hands it to others.
# Rollbacks are always allowed and need no override.


def can_override_window(user, obj: Model) -> bool:
    return can(user, Action.MANAGE, obj)


# --- The audit log ---------------------------------------------------------------
# Platform admins read every entry; others read the entries of projects they
# configure and of groups they maintain (a Maintainer sees his groups'), and
# nothing else: the same rule for the page, its CSV and the API.


def visible_audit_entries(user, queryset: QuerySet) -> QuerySet:
    if is_platform_admin(user):
        return queryset
    if not user.is_authenticated or not user.is_active:
        return queryset.none()
    return queryset.filter(
        Q(project_id__in=visible_projects(user, Action.CONFIGURE).values("pk"))
        | Q(team_id__in=teams_user_maintains(user).values("pk"))
    )


# --- Notification channels ----------------------------------------------------
# A project's channels are its configuration (CONFIGURE to change, VIEW_DETAILS
# to see). An environment's default channels reach every project there, so
# only platform admins change them; Maintainers may see them (to decide whether
# their project keeps them).


def can_configure_channel(user, channel) -> bool:
    """May ``user`` create, change, delete or test ``channel`` (as it stands)?"""
    if channel.project_id is not None:
        return can(user, Action.CONFIGURE, channel.project)
    return is_platform_admin(user)


def visible_channels(user, queryset: QuerySet) -> QuerySet:
    """Channels ``user`` may see: those of projects whose details they see,
    and environment defaults for Maintainers anywhere."""
    if is_platform_admin(user):
        return queryset
    mine = Q(project__in=visible_projects(user, Action.VIEW_DETAILS).values("pk"))
    if is_maintainer_somewhere(user):
        mine |= Q(project__isnull=True)
    return queryset.filter(mine)


def visible_deliveries(user, queryset: QuerySet) -> QuerySet:
    """Deliveries about tickets whose details ``user`` sees, and test messages
    of channels they see."""
    from notifications.models import Channel

    if is_platform_admin(user):
        return queryset
    tickets = Q(ticket__project__in=visible_projects(user, Action.VIEW_DETAILS).values("pk"))
    tests = Q(ticket__isnull=True, channel__in=visible_channels(user, Channel.objects.all()).values("pk"))
    return queryset.filter(tickets | tests)
