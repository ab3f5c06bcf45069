"""Per-user, per-project permission grants (guardian object permissions)."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.utils.translation import gettext_lazy as _
from guardian.shortcuts import assign_perm, get_user_perms, remove_perm

from .permissions import PROJECT_ACTIONS, Action, can, perm_codename, require

# One sentence per verb, so each reads naturally once translated.
REFUSALS = {
    "grant": _("You cannot grant '%(action)s', which you do not hold."),
    "revoke": _("You cannot revoke '%(action)s', which you do not hold."),
}


def _require_authority(actor, action: Action, project, verb: str) -> Action:
    """Granting or revoking an action takes CONFIGURE and the action itself:
    nobody hands out, or takes away, more power than they hold (so only those
    with MANAGE touch MANAGE grants, an Owner's included)."""
    action = Action(action)
    if action not in PROJECT_ACTIONS:
        raise ValueError(f"{action} is not a project action")
    require(actor, Action.CONFIGURE, project)
    if not can(actor, action, project):
        raise PermissionDenied(REFUSALS[verb] % {"action": action.value})
    return action


def grant(actor, user, action: Action | str, project) -> None:
    """Give ``user`` one action on one project without team membership."""
    action = _require_authority(actor, Action(action), project, "grant")
    assign_perm(perm_codename(action), user, project)


def revoke(actor, user, action: Action | str, project) -> None:
    """Take one granted action on one project from ``user``."""
    action = _require_authority(actor, Action(action), project, "revoke")
    remove_perm(perm_codename(action), user, project)


def granted_actions(user, project) -> list[Action]:
    codes = set(get_user_perms(user, project))
    return [a for a in PROJECT_ACTIONS if perm_codename(a) in codes]
