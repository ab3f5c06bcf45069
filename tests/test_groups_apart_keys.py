"""Per-group deploy keys: a project logs in with its group's key (or one a
platform admin chose), never with the platform key by default, and a group's
Maintainer can pick only his group's keys."""

from __future__ import annotations

import io

import pytest
from django.contrib.admin.sites import site as admin_site
from django.core.exceptions import PermissionDenied
from django.core.management import call_command
from django.test import RequestFactory
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.models import Role, Team
from engine.checks import CheckReport
from projects import config_check as checks
from projects.keys import create_key, default_key, key_for, team_key
from projects.models import DeployKey, Project

from . import helpers
from .test_admin_permissions import _project_form


def change_url(project) -> str:
    return reverse("admin:projects_project_change", args=[project.pk])


def _private_lines(key: DeployKey) -> list[str]:
    return key.private_key().splitlines()[1:-1]


def test_a_project_without_a_chosen_key_uses_its_groups_key_not_the_platform_key(world):
    platform = default_key()
    web, payments = key_for(world.project), key_for(world.other_project)
    assert web.team == world.team and web.is_default
    assert payments.team == world.other_team
    assert len({web.pk, payments.pk, platform.pk}) == 3
    assert web.public_key != payments.public_key != platform.public_key


def test_a_project_uses_the_key_chosen_for_it(world):
    chosen = create_key("web-extra", team=world.team)
    world.project.deploy_key = chosen
    world.project.save()
    assert key_for(world.project) == chosen


def test_a_group_made_in_the_admin_gets_its_key_at_once(client, world):
    client.force_login(world.users["admin"])
    response = client.post(reverse("admin:accounts_team_add"), {
        "name": "kitchen", "description": "",
        "memberships-TOTAL_FORMS": "0", "memberships-INITIAL_FORMS": "0",
        "memberships-MIN_NUM_FORMS": "0", "memberships-MAX_NUM_FORMS": "1000",
    })
    assert response.status_code == 302
    team = Team.objects.get(name="kitchen")
    assert DeployKey.objects.filter(team=team, is_default=True).count() == 1


def test_a_group_made_before_keys_were_per_group_gets_one_on_first_use(world):
    assert not DeployKey.objects.filter(team=world.team).exists()
    first = team_key(world.team)
    assert team_key(world.team) == first  # made once, then reused
    assert DeployKey.objects.filter(team=world.team, is_default=True).count() == 1


@pytest.mark.parametrize("persona", ["guest", "owner", "admin"])
def test_the_group_page_shows_its_authorized_keys_line_never_the_private_half(client, world, persona):
    client.force_login(world.users[persona])
    body = client.get(reverse("admin:accounts_team_change", args=[world.team.pk])).content.decode()
    key = team_key(world.team)
    assert key.authorized_keys_line() in body
    assert "PRIVATE KEY" not in body and key.private_key_encrypted not in body
    assert all(line not in body for line in _private_lines(key))


def test_a_maintainer_cannot_give_his_project_the_platform_key(client, world):
    platform = default_key()
    data = _project_form(world.project, deploy_key=platform.pk, description="platform key?")
    client.force_login(world.users["maintainer"])
    response = client.post(change_url(world.project), data)
    assert response.status_code == 200
    world.project.refresh_from_db()
    assert world.project.deploy_key_id is None and world.project.description != "platform key?"


def test_a_maintainer_cannot_give_his_project_another_groups_key(client, world):
    foreign = team_key(world.other_team)
    client.force_login(world.users["maintainer"])
    page = client.get(change_url(world.project)).content.decode()
    assert foreign.name not in page and default_key().name not in page
    response = client.post(change_url(world.project), _project_form(world.project, deploy_key=foreign.pk))
    assert response.status_code == 200
    world.project.refresh_from_db()
    assert world.project.deploy_key_id is None


def test_a_maintainer_may_pick_another_key_of_his_own_group(client, world):
    spare = create_key("web-spare", team=world.team)
    client.force_login(world.users["maintainer"])
    response = client.post(change_url(world.project), _project_form(world.project, deploy_key=spare.pk))
    assert response.status_code == 302
    world.project.refresh_from_db()
    assert world.project.deploy_key == spare


def test_a_platform_admin_may_give_a_project_the_platform_key(client, world):
    platform = default_key()
    client.force_login(world.users["admin"])
    response = client.post(change_url(world.project), _project_form(world.project, deploy_key=platform.pk))
    assert response.status_code == 302
    world.project.refresh_from_db()
    assert key_for(world.project) == platform


def test_saving_refuses_a_foreign_key_even_past_the_form(world):
    request = RequestFactory().post("/")
    request.user = world.users["maintainer"]
    project = Project.objects.get(pk=world.project.pk)
    project.deploy_key = default_key()
    with pytest.raises(PermissionDenied):
        admin_site._registry[Project].save_model(request, project, None, True)
    assert Project.objects.get(pk=world.project.pk).deploy_key_id is None


def test_a_moved_project_does_not_carry_its_old_groups_key_along(client, world):
    # The Owner of web is also a Maintainer of payments, so he may move the
    # project; its web key must not go with it into payments.
    helpers.add_member(world.users["owner"], world.other_team, Role.MAINTAINER)
    web_key = create_key("web-spare", team=world.team)
    world.project.deploy_key = web_key
    world.project.save()
    client.force_login(world.users["owner"])
    data = _project_form(world.project, team=world.other_team.pk, deploy_key=web_key.pk, webroot="/data/nginx/moved")
    response = client.post(change_url(world.project), data)
    assert response.status_code == 200
    assert "Pick one of this group&#x27;s keys" in response.content.decode()
    world.project.refresh_from_db()
    assert world.project.team == world.team
    data["deploy_key"] = ""
    assert client.post(change_url(world.project), data).status_code == 302
    world.project.refresh_from_db()
    assert world.project.team == world.other_team and key_for(world.project) == team_key(world.other_team)


def test_the_config_check_logs_in_with_the_groups_key(world, monkeypatch):
    used = []
    monkeypatch.setattr(checks, "check_project", lambda **kw: used.append(kw["key"].value) or CheckReport())
    checks.run_check(world.users["maintainer"], world.project)
    assert used == [team_key(world.team).private_key()]
    assert used[0] != default_key().private_key()


def test_the_key_list_shows_a_maintainer_only_his_groups_keys(client, world):
    mine, theirs, platform = team_key(world.team), team_key(world.other_team), default_key()
    client.force_login(world.users["maintainer"])
    body = client.get(reverse("admin:projects_deploykey_changelist")).content.decode()
    assert mine.name in body
    assert theirs.name not in body and platform.name not in body


def test_a_groups_default_key_cannot_be_deleted(client, world):
    key = team_key(world.team)
    client.force_login(world.users["admin"])
    client.post(reverse("admin:projects_deploykey_delete", args=[key.pk]), {"post": "yes"})
    assert DeployKey.objects.filter(pk=key.pk).exists()


def test_the_api_names_the_key_the_project_logs_in_with(world):
    client = APIClient()
    client.force_login(world.users["reporter"])
    data = client.get(f"/api/projects/{world.project.pk}/").json()
    key = team_key(world.team)
    assert data["deploy_key"] == {"name": key.name, "fingerprint": key.fingerprint, "public_key": key.public_key}


def test_first_run_says_keys_are_per_group(db):
    out = io.StringIO()
    call_command("walle_init", stdout=out)
    text = out.getvalue()
    assert "per group" in text
    assert "every\ntarget host" not in text and "on every" not in text


def test_with_a_key_an_admin_chose_a_maintainer_cannot_retarget_the_project(client, world):
    """The platform key opens every server that trusted the old shared key:
    a Maintainer must not point such a project at another group's repository."""
    world.project.deploy_key = default_key()  # a platform admin's choice
    world.project.save()
    client.force_login(world.users["maintainer"])
    evil = "ssh://git@git.example.com/payments/app.git"
    response = client.post(change_url(world.project), _project_form(world.project, deploy_key=default_key().pk,
                                                                     repo_url=evil))
    assert response.status_code == 200
    assert "only a platform admin may change its repository or hosts" in response.content.decode()
    world.project.refresh_from_db()
    assert world.project.repo_url != evil
    # Wording may still change, and with the group's own key everything may.
    ok = client.post(change_url(world.project), _project_form(world.project, deploy_key=default_key().pk,
                                                              description="new words"))
    assert ok.status_code == 302
    switched = client.post(change_url(world.project), _project_form(world.project, deploy_key="", repo_url=evil))
    assert switched.status_code == 302
    world.project.refresh_from_db()
    assert world.project.repo_url == evil and key_for(world.project) == team_key(world.team)
