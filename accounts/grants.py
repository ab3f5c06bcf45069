"""Per-user, per-project permission grants (guardian object permissions)."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from guardian.shortcuts import assign_perm, get_user_perms, remove_perm

from .permissions import PROJECT_ACTIONS, Action, can, perm_codename, require


def grant(actor, user, action: Action | str, project) -> None:
    """Give ``user`` one action on one project without team membership.

    Maintainers may grant only what they hold themselves, so nobody hands out
    more power than they have (Owner-only MANAGE stays with Owners).
    """
    action = Action(action)
    if action not in PROJECT_ACTIONS:
        raise ValueError(f"{action} is not a project action")
    require(actor, Action.CONFIGURE, project)
    if not can(actor, action, project):
        raise PermissionDenied(f"You cannot grant '{action.value}', which you do not hold.")
    assign_perm(perm_codename(action), user, project)


def revoke(actor, user, action: Action | str, project) -> None:
    action = Action(action)
    require(actor, Action.CONFIGURE, project)
    remove_perm(perm_codename(action), user, project)


def granted_actions(user, project) -> list[Action]:
    codes = set(get_user_perms(user, project))
    return [a for a in PROJECT_ACTIONS if perm_codename(a) in codes]
