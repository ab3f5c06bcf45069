"""Moving a project to another group takes power in both groups through
membership, never a grant; granting or revoking an action takes that action."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied
from django.urls import reverse

from accounts import grants, permissions
from accounts.models import Role
from accounts.permissions import Action
from projects.forms import team_choices

from . import helpers
from .test_admin_permissions import _project_form


def change_url(project) -> str:
    return reverse("admin:projects_project_change", args=[project.pk])


def _move(client, user, project, team):
    client.force_login(user)
    # A webroot of its own, so the move is refused (or not) for its group alone.
    return client.post(change_url(project), _project_form(project, team=team.pk, webroot="/data/nginx/moved"))


def test_a_configure_grant_does_not_let_another_groups_maintainer_move_the_project(client, world):
    # The reviewer's proof: outsider maintains payments and holds CONFIGURE on
    # the website; moving it into payments would make him its Maintainer.
    outsider = world.users["outsider"]
    grants.grant(world.users["owner"], outsider, Action.CONFIGURE, world.project)
    assert set(team_choices(outsider, world.project)) == {world.team}
    response = _move(client, outsider, world.project, world.other_team)
    assert response.status_code == 200
    world.project.refresh_from_db()
    assert world.project.team == world.team
    assert not permissions.can(outsider, Action.MANAGE, world.project)


def test_a_manage_grant_does_not_let_anyone_move_the_project_either(client, world):
    outsider = world.users["outsider"]
    for action in (Action.CONFIGURE, Action.MANAGE):
        grants.grant(world.users["owner"], outsider, action, world.project)
    assert not permissions.can_put_project_in_team(outsider, world.other_team, world.project)
    _move(client, outsider, world.project, world.other_team)
    world.project.refresh_from_db()
    assert world.project.team == world.team


def test_a_maintainer_of_both_groups_cannot_move_without_manage_in_the_current_one(client, world):
    maintainer = world.users["maintainer"]
    helpers.add_member(maintainer, world.other_team, Role.MAINTAINER)
    assert _move(client, maintainer, world.project, world.other_team).status_code == 200
    world.project.refresh_from_db()
    assert world.project.team == world.team


def test_an_owner_cannot_move_into_a_group_he_does_not_maintain(client, world):
    owner = world.users["owner"]
    helpers.add_member(owner, world.other_team, Role.DEVELOPER)
    assert _move(client, owner, world.project, world.other_team).status_code == 200
    world.project.refresh_from_db()
    assert world.project.team == world.team


def test_an_owner_who_maintains_the_destination_may_move_the_project(client, world):
    owner = world.users["owner"]
    helpers.add_member(owner, world.other_team, Role.MAINTAINER)
    assert _move(client, owner, world.project, world.other_team).status_code == 302
    world.project.refresh_from_db()
    assert world.project.team == world.other_team


def test_a_platform_admin_may_move_any_project(client, world):
    assert _move(client, world.users["admin"], world.project, world.other_team).status_code == 302
    world.project.refresh_from_db()
    assert world.project.team == world.other_team


# Item 6: revoking needs the authority being revoked.


def test_a_maintainer_cannot_revoke_an_owners_manage_grant(world):
    outsider = world.users["outsider"]
    grants.grant(world.users["owner"], outsider, Action.MANAGE, world.project)
    with pytest.raises(PermissionDenied):
        grants.revoke(world.users["maintainer"], outsider, Action.MANAGE, world.project)
    assert permissions.can(outsider, Action.MANAGE, world.project)
    grants.revoke(world.users["owner"], outsider, Action.MANAGE, world.project)
    assert not permissions.can(outsider, Action.MANAGE, world.project)


def test_the_grants_page_refuses_a_maintainer_revoking_manage(client, world):
    outsider = world.users["outsider"]
    grants.grant(world.users["owner"], outsider, Action.MANAGE, world.project)
    client.force_login(world.users["maintainer"])
    url = reverse("admin:projects_project_grants", args=[world.project.pk])
    response = client.post(url, {"username": "outsider", "action": "manage", "revoke": "on"}, follow=True)
    assert "You cannot revoke &#x27;manage&#x27;, which you do not hold." in response.content.decode()
    assert permissions.can(outsider, Action.MANAGE, world.project)


def test_a_configure_grantee_cannot_revoke_an_approve_grant_he_does_not_hold(world):
    granted, outsider = world.users["granted"], world.users["outsider"]
    grants.grant(world.users["owner"], granted, Action.CONFIGURE, world.project)
    grants.grant(world.users["owner"], outsider, Action.APPROVE, world.project)
    with pytest.raises(PermissionDenied):
        grants.revoke(granted, outsider, Action.APPROVE, world.project)
    assert permissions.can(outsider, Action.APPROVE, world.project)
