"""Admin screens for deploy keys, API tokens and per-user project grants."""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts import permissions
from accounts.models import ApiToken
from projects.models import DeployKey


def test_a_new_deploy_key_is_generated_and_only_its_public_half_shown(client, world):
    client.force_login(world.users["admin"])
    response = client.post(reverse("admin:projects_deploykey_add"), {"name": "billing"}, follow=True)
    key = DeployKey.objects.get(name="billing")
    assert key.public_key.startswith("ssh-ed25519 ") and key.fingerprint.startswith("SHA256:")
    assert key.private_key().startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    page = client.get(reverse("admin:projects_deploykey_change", args=[key.pk])).content.decode()
    for body in (response.content.decode(), page):
        assert "PRIVATE KEY" not in body and key.private_key_encrypted not in body
    assert key.public_key.split()[1] in page


def test_only_platform_admins_create_deploy_keys(client, world):
    client.force_login(world.users["owner"])
    client.post(reverse("admin:projects_deploykey_add"), {"name": "sneaky"})
    assert not DeployKey.objects.filter(name="sneaky").exists()


def test_admins_issue_a_token_shown_once_and_stored_hashed(client, world):
    client.force_login(world.users["admin"])
    developer = world.users["developer"]
    response = client.post(reverse("admin:accounts_apitoken_add"), {"user": developer.pk, "name": "ci"}, follow=True)
    token = ApiToken.objects.get(user=developer, name="ci")
    raw = next(m.message for m in response.context["messages"]).split(": ")[1].split()[0]
    assert ApiToken.lookup(raw) == token
    assert raw not in client.get(reverse("admin:accounts_apitoken_change", args=[token.pk])).content.decode()
    client.post(reverse("admin:accounts_apitoken_changelist"), {"action": "revoke", "_selected_action": [token.pk]})
    assert ApiToken.lookup(raw) is None


def _grant(client, user, project, **data):
    client.force_login(user)
    return client.post(reverse("admin:projects_project_grants", args=[project.pk]), data, follow=True)


def test_maintainers_grant_and_revoke_one_action_on_one_project(client, world):
    guest = world.users["guest"]
    _grant(client, world.users["maintainer"], world.project, username="outsider", action="approve")
    outsider = world.users["outsider"]
    assert permissions.can(outsider, permissions.Action.APPROVE, world.project)
    page = client.get(reverse("admin:projects_project_grants", args=[world.project.pk])).content.decode()
    assert "outsider" in page and "approve" in page
    _grant(client, world.users["maintainer"], world.project, username="outsider", action="approve", revoke="on")
    assert not permissions.can(outsider, permissions.Action.APPROVE, world.project)
    assert not permissions.can(guest, permissions.Action.APPROVE, world.project)


def test_a_maintainer_cannot_grant_owner_powers(client, world):
    response = _grant(client, world.users["maintainer"], world.project, username="guest", action="manage")
    assert "which you do not hold" in response.content.decode()
    assert not permissions.can(world.users["guest"], permissions.Action.MANAGE, world.project)


@pytest.mark.parametrize("persona", ["guest", "reporter", "developer", "outsider"])
def test_people_who_do_not_configure_the_project_cannot_grant(client, world, persona):
    response = _grant(client, world.users[persona], world.project, username="guest", action="view_details")
    assert response.status_code in (403, 404)
    assert not permissions.can(world.users["guest"], permissions.Action.VIEW_DETAILS, world.project)
