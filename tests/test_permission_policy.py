"""The policy table itself: every persona against every action (accounts.permissions)."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied

from accounts import grants, permissions
from accounts.permissions import Action
from projects.models import Host, Project
from releases.models import Ticket

from . import helpers

A = Action
# persona -> project-level actions allowed on the team's project
EXPECTED = {
    "guest": {A.VIEW},
    "reporter": {A.VIEW, A.VIEW_DETAILS},
    "developer": {A.VIEW, A.VIEW_DETAILS, A.SUBMIT, A.DEPLOY_OWN},
    "maintainer": {A.VIEW, A.VIEW_DETAILS, A.SUBMIT, A.DEPLOY_OWN, A.APPROVE, A.DEPLOY_ANY, A.ROLLBACK, A.CONFIGURE},
    "owner": set(permissions.PROJECT_ACTIONS),
    "outsider": set(),
    "granted": {A.VIEW, A.VIEW_DETAILS, A.APPROVE},
    "admin": set(permissions.PROJECT_ACTIONS),
}


@pytest.fixture
def granted_world(world):
    grants.grant(world.users["owner"], world.users["granted"], A.APPROVE, world.project)
    return world


@pytest.mark.parametrize("persona", list(EXPECTED))
@pytest.mark.parametrize("action", permissions.PROJECT_ACTIONS)
def test_project_actions_follow_the_role_table(granted_world, persona, action):
    user = granted_world.users[persona]
    assert permissions.can(user, action, granted_world.project) is (action in EXPECTED[persona])


@pytest.mark.parametrize("persona", list(EXPECTED))
def test_lists_show_exactly_the_projects_a_user_may_see(granted_world, persona):
    user = granted_world.users[persona]
    seen = set(permissions.visible(user, Project.objects.all()).values_list("slug", flat=True))
    expected = {"website"} if EXPECTED[persona] else set()
    if persona == "outsider":
        expected = {"billing"}  # their own team's project only
    if persona == "admin":
        expected = {"website", "billing"}
    assert seen == expected


def test_a_stray_global_permission_does_not_expose_every_project(world):
    from django.contrib.auth.models import Permission

    user = world.users["guest"]
    user.user_permissions.add(Permission.objects.get(codename="walle_view"))
    seen = set(permissions.visible(user, Project.objects.all()).values_list("slug", flat=True))
    assert seen == {"website"}


@pytest.mark.parametrize(
    "persona,own,expected",
    [
        ("developer", True, True), ("developer", False, False), ("maintainer", False, True),
        ("reporter", True, False), ("guest", True, False),
    ],
)
def test_deploy_is_own_ticket_for_developers_and_any_for_maintainers(world, persona, own, expected):
    author = world.users[persona] if own else world.users["owner"]
    ticket = helpers.make_ticket(world.project, author, Ticket.Status.APPROVED)
    assert permissions.can(world.users[persona], A.DEPLOY, ticket) is expected


def test_only_the_author_edits_and_maintainers_may_cancel_any(world):
    ticket = helpers.make_ticket(world.project, world.users["developer"])
    assert permissions.can(world.users["developer"], A.EDIT, ticket)
    assert not permissions.can(world.users["maintainer"], A.EDIT, ticket)
    assert permissions.can(world.users["maintainer"], A.CANCEL, ticket)
    assert not permissions.can(world.users["reporter"], A.CANCEL, ticket)


def test_submitter_may_not_approve_own_ticket_in_production(world):
    ticket = helpers.make_ticket(world.project, world.users["maintainer"])
    assert not permissions.can(world.users["maintainer"], A.APPROVE, ticket)
    assert not permissions.can(world.users["admin"], A.APPROVE, helpers.make_ticket(world.project, world.users["admin"]))
    assert permissions.can(world.users["owner"], A.APPROVE, ticket)
    with pytest.raises(PermissionDenied, match="someone else must approve"):
        permissions.require(world.users["maintainer"], A.APPROVE, ticket)


def test_self_approval_is_allowed_where_the_environment_says_so(world):
    staging = helpers.make_project(world.team, env="staging")
    ticket = helpers.make_ticket(staging, world.users["maintainer"])
    assert permissions.can(world.users["maintainer"], A.APPROVE, ticket)


def test_maintainers_cannot_grant_what_they_do_not_hold(world):
    with pytest.raises(PermissionDenied):
        grants.grant(world.users["maintainer"], world.users["guest"], A.MANAGE, world.project)
    with pytest.raises(PermissionDenied):
        grants.grant(world.users["developer"], world.users["guest"], A.VIEW_DETAILS, world.project)
    grants.grant(world.users["maintainer"], world.users["guest"], A.VIEW_DETAILS, world.project)
    assert permissions.can(world.users["guest"], A.VIEW_DETAILS, world.project)
    grants.revoke(world.users["maintainer"], world.users["guest"], A.VIEW_DETAILS, world.project)
    assert not permissions.can(world.users["guest"], A.VIEW_DETAILS, world.project)


def test_hosts_are_visible_through_projects_only(world):
    reporter_hosts = permissions.visible(world.users["reporter"], Host.objects.all(), A.VIEW_DETAILS)
    assert list(reporter_hosts) == list(world.project.hosts.all())
    assert not permissions.visible(world.users["guest"], Host.objects.all(), A.VIEW_DETAILS).exists()


def test_inactive_users_can_do_nothing(world):
    user = world.users["owner"]
    user.is_active = False
    user.save()
    assert not any(permissions.can(user, a, world.project) for a in permissions.PROJECT_ACTIONS)
