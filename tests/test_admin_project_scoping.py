"""Review findings on the admin: what a project form may offer and take, list
filters, ticket details for Guests, and adding members as an Owner."""

from __future__ import annotations

import posixpath

import pytest
from django.conf import settings
from django.contrib.admin.sites import site as admin_site
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import RequestFactory
from django.urls import reverse

from accounts import grants, permissions
from accounts.models import ApiToken, Membership, Role, Team
from accounts.permissions import Action
from projects.forms import deploy_key_choices, link_pasted_hosts, team_choices
from projects.keys import create_key
from projects.models import DeployKey, Host, Project
from releases.models import DeployRun, Ticket

from . import helpers
from .test_admin_permissions import _project_form

ALL = ["guest", "reporter", "developer", "maintainer", "owner", "outsider", "granted", "admin"]


def login(client, user):
    client.force_login(user)
    return client


def change_url(project) -> str:
    return reverse("admin:projects_project_change", args=[project.pk])


# 1. Pasted host lines never take over another group's host.


def test_pasting_another_groups_host_is_refused_and_saves_nothing(client, world):
    foreign = world.other_project.hosts.get()
    before_hosts = set(world.project.hosts.values_list("pk", flat=True))
    before_count = Host.objects.count()
    data = _project_form(world.project, description="changed", host_lines=f"10.9.0.1\n{foreign.address}\n")
    response = login(client, world.users["maintainer"]).post(change_url(world.project), data)
    assert response.status_code == 200
    body = response.content.decode()
    assert f"line 2: host {foreign.address} is used by projects you do not configure" in body
    world.project.refresh_from_db()
    assert world.project.description != "changed"
    assert set(world.project.hosts.values_list("pk", flat=True)) == before_hosts
    assert Host.objects.count() == before_count  # 10.9.0.1 was not created either
    assert not foreign.projects.filter(pk=world.project.pk).exists()


def test_pasting_an_unused_or_own_host_links_it(client, world):
    spare = helpers.make_host("10.9.1.1")  # registered but in no project
    own = world.project.hosts.get()
    data = _project_form(world.project, host_lines=f"{spare.address}\n{own.address}\n10.9.1.2:2222")
    response = login(client, world.users["maintainer"]).post(change_url(world.project), data)
    assert response.status_code == 302
    assert {spare.address, own.address, "10.9.1.2"} <= set(world.project.hosts.values_list("address", flat=True))


def test_platform_admins_may_link_a_shared_host(client, world):
    foreign = world.other_project.hosts.get()
    # A webroot of its own: the billing project already switches /data/nginx/website there.
    data = _project_form(world.project, host_lines=foreign.address, webroot="/data/nginx/shop")
    response = login(client, world.users["admin"]).post(change_url(world.project), data)
    assert response.status_code == 302
    assert world.project.hosts.filter(pk=foreign.pk).exists()


def test_linking_pasted_hosts_rechecks_the_policy(world):
    from projects.validators import HostAddress

    foreign = world.other_project.hosts.get()
    with pytest.raises(PermissionDenied):
        link_pasted_hosts(world.users["maintainer"], world.project, [HostAddress(foreign.address, foreign.port)])
    assert not world.project.hosts.filter(pk=foreign.pk).exists()


# 2. The deploy key dropdown offers no other group's key.
# (Keys are per group now: "spare" is a second key of the website's group,
# "foreign" one of the payments group; "platform" belongs to no group.)


@pytest.fixture
def keys(world):
    foreign = create_key("payments-key", team=world.other_team)
    world.other_project.deploy_key = foreign
    world.other_project.save()
    return {"foreign": foreign, "spare": create_key("spare-key", team=world.team), "platform": create_key("platform-key")}


def test_deploy_key_choices_hide_keys_of_projects_one_does_not_configure(client, world, keys):
    body = login(client, world.users["maintainer"]).get(change_url(world.project)).content.decode()
    assert "spare-key" in body
    assert "payments-key" not in body and "platform-key" not in body
    body = login(client, world.users["admin"]).get(change_url(world.project)).content.decode()
    assert "payments-key" in body and "platform-key" in body


def test_choosing_a_foreign_deploy_key_is_refused(client, world, keys):
    data = _project_form(world.project, deploy_key=keys["foreign"].pk, description="changed")
    response = login(client, world.users["maintainer"]).post(change_url(world.project), data)
    assert response.status_code == 200
    world.project.refresh_from_db()
    assert world.project.deploy_key_id is None and world.project.description != "changed"
    data = _project_form(world.project, deploy_key=keys["spare"].pk)
    assert login(client, world.users["maintainer"]).post(change_url(world.project), data).status_code == 302
    world.project.refresh_from_db()
    assert world.project.deploy_key == keys["spare"]


def test_a_project_keeps_its_current_key_even_if_shared(client, world, keys):
    # A platform admin gave the website the payments key; its Maintainer can still save it.
    world.project.deploy_key = keys["foreign"]
    world.project.save()
    data = _project_form(world.project, deploy_key=keys["foreign"].pk, description="still saves")
    assert login(client, world.users["maintainer"]).post(change_url(world.project), data).status_code == 302
    world.project.refresh_from_db()
    assert world.project.description == "still saves"


def test_usable_deploy_keys_policy(world, keys):
    maintainer, outsider = world.users["maintainer"], world.users["outsider"]
    assert set(deploy_key_choices(maintainer)) == {keys["spare"]}
    assert set(deploy_key_choices(outsider)) == {keys["foreign"]}
    assert set(deploy_key_choices(world.users["admin"])) == set(keys.values())
    assert not deploy_key_choices(world.users["guest"]).filter(pk=keys["foreign"].pk).exists()


# 3. No two projects share or nest a release library or workspace.


@pytest.mark.parametrize(
    "field,value",
    [
        ("release_library", "/data/releases/billing"),  # billing's default
        ("release_library", "/data/releases"),  # contains every default library
        ("release_library", "/data/releases/billing/website"),  # inside billing's
        ("workspace", posixpath.join(str(settings.WALLE_WORKSPACE_ROOT), "billing")),
        # The workspace root itself is now refused earlier, as not inside the
        # root: tests/test_groups_apart_workspaces.py covers it.
    ],
)
def test_release_libraries_and_workspaces_are_not_shared(client, world, field, value):
    data = _project_form(world.project, **{field: value}, description="changed")
    response = login(client, world.users["maintainer"]).post(change_url(world.project), data)
    assert response.status_code == 200
    assert "another project" in response.content.decode()
    world.project.refresh_from_db()
    assert getattr(world.project, field) != value and world.project.description != "changed"


def test_a_sibling_directory_with_a_common_prefix_is_fine(client, world):
    # Workspaces now must lie inside WALLE_WORKSPACE_ROOT; billing-2 sits beside billing's default.
    workspace = posixpath.join(str(settings.WALLE_WORKSPACE_ROOT), "billing-2")
    data = _project_form(world.project, release_library="/data/releases/billing-2", workspace=workspace)
    assert login(client, world.users["maintainer"]).post(change_url(world.project), data).status_code == 302


def test_a_new_project_whose_slug_default_collides_is_refused(world):
    project = Project(
        team=world.team, environment=world.project.environment, name="copy", slug="copy",
        repo_url=world.project.repo_url, webroot="/data/nginx/copy", release_library="/data/releases/website",
    )
    with pytest.raises(ValidationError) as exc:
        project.full_clean()
    assert "release_library" in exc.value.message_dict
    project.release_library = ""
    project.full_clean()  # /data/releases/copy is its own


# 4. Guests do not see deploy errors or notes in the ticket admin.


@pytest.mark.parametrize("persona", ["guest", "reporter", "maintainer", "admin"])
def test_ticket_admin_shows_notes_and_run_errors_only_with_details(client, world, persona):
    ticket = helpers.make_ticket(world.project, world.users["developer"], Ticket.Status.FAILED, commit="c0ffee" * 6 + "abcd")
    ticket.events.create(actor=world.users["maintainer"], action="note", note="secret-note-text")
    DeployRun.objects.create(ticket=ticket, number=1, status=DeployRun.Status.FAILED, error="boom-on-10.0.0.1")
    response = login(client, world.users[persona]).get(reverse("admin:releases_ticket_change", args=[ticket.pk]))
    assert response.status_code == 200
    body = response.content.decode()
    assert ticket.title in body  # the basic fields stay visible to Guests
    details = persona != "guest"
    assert ("secret-note-text" in body) is details
    assert ("boom-on-10.0.0.1" in body) is details
    assert (ticket.commit in body) is details


# 5. List filters offer only what the user can see.


@pytest.mark.parametrize("persona", ALL)
def test_ticket_list_filter_does_not_leak_projects(client, world, persona):
    helpers.make_ticket(world.project, world.users["developer"], title="t-one")
    helpers.make_ticket(world.other_project, world.users["outsider"], title="t-two")
    extra = helpers.make_project(world.team, name="website-extra", slug="website-extra")
    helpers.make_ticket(extra, world.users["developer"], title="t-three")  # two choices: the filter shows
    body = login(client, world.users[persona]).get(reverse("admin:releases_ticket_changelist")).content.decode()
    assert ("billing" in body) is (persona in {"outsider", "admin"})


@pytest.mark.parametrize("persona", ALL)
def test_project_list_filter_does_not_leak_teams(client, world, persona):
    helpers.make_team("kitchen")  # owns nothing: no filter lists it
    body = login(client, world.users[persona]).get(reverse("admin:projects_project_changelist")).content.decode()
    assert ("payments" in body) is (persona in {"outsider", "admin"})
    assert "kitchen" not in body


def test_release_list_filter_does_not_leak_projects(client, world):
    body = login(client, world.users["guest"]).get(reverse("admin:releases_release_changelist")).content.decode()
    assert "billing" not in body


# 6. An existing project changes environment only by a platform admin.


def test_a_maintainer_cannot_move_a_production_project_to_test(client, world):
    test_env = helpers.environment("test")
    page = login(client, world.users["maintainer"]).get(change_url(world.project)).content.decode()
    assert 'name="environment"' not in page  # shown read-only
    data = _project_form(world.project, environment=test_env.pk, description="moved?")
    client.post(change_url(world.project), data)
    world.project.refresh_from_db()
    assert world.project.environment.slug == "production"


def test_a_platform_admin_can_move_a_project_between_environments(client, world):
    test_env = helpers.environment("test")
    data = _project_form(world.project, environment=test_env.pk)
    assert login(client, world.users["admin"]).post(change_url(world.project), data).status_code == 302
    world.project.refresh_from_db()
    assert world.project.environment == test_env


def test_save_refuses_an_environment_change_even_past_the_form(world):
    request = RequestFactory().post("/")
    request.user = world.users["maintainer"]
    project = Project.objects.get(pk=world.project.pk)
    project.environment = helpers.environment("test")
    with pytest.raises(PermissionDenied):
        admin_site._registry[Project].save_model(request, project, None, True)
    assert Project.objects.get(pk=world.project.pk).environment.slug == "production"


def test_a_maintainer_may_create_a_project_in_any_environment(client, world):
    test_env = helpers.environment("test")
    data = _project_form(world.project, name="fresh", slug="fresh", environment=test_env.pk, hosts=[])
    response = login(client, world.users["maintainer"]).post(reverse("admin:projects_project_add"), data)
    assert response.status_code == 302
    assert Project.objects.get(slug="fresh").environment == test_env


# 7. A per-project CONFIGURE grant can save the project (but not move it).


@pytest.fixture
def configurer(world):
    grants.grant(world.users["owner"], world.users["granted"], Action.CONFIGURE, world.project)
    return world.users["granted"]


def test_a_configure_grant_can_change_the_project(client, world, configurer):
    data = _project_form(world.project, description="changed by grant")
    response = login(client, configurer).post(change_url(world.project), data)
    assert response.status_code == 302
    world.project.refresh_from_db()
    assert world.project.description == "changed by grant"


def test_a_configure_grant_cannot_move_the_project_to_another_team(client, world, configurer):
    data = _project_form(world.project, team=world.other_team.pk, description="moved")
    response = login(client, configurer).post(change_url(world.project), data)
    assert response.status_code == 200
    world.project.refresh_from_db()
    assert world.project.team == world.team and world.project.description != "moved"


def test_project_team_choices_policy(world, configurer):
    assert set(team_choices(configurer, world.project)) == {world.team}
    assert not team_choices(configurer).exists()
    assert not team_choices(configurer, world.other_project).exists()
    assert set(team_choices(world.users["maintainer"])) == {world.team}
    assert not permissions.can_put_project_in_team(world.users["maintainer"], world.other_team, world.project)


# 8. Owners add members from the group page.


def _membership_post(team, user, role) -> dict:
    return {
        "name": team.name, "description": "",
        "memberships-TOTAL_FORMS": "1", "memberships-INITIAL_FORMS": "0",
        "memberships-MIN_NUM_FORMS": "0", "memberships-MAX_NUM_FORMS": "1000",
        "memberships-0-user": str(user.pk), "memberships-0-role": str(int(role)),
        "memberships-0-team": str(team.pk), "memberships-0-id": "",
    }


@pytest.mark.parametrize("persona", ["owner", "maintainer", "outsider", "admin"])
def test_owners_add_members_through_the_group_page(client, world, persona):
    url = reverse("admin:accounts_team_change", args=[world.team.pk])
    newcomer = world.users["granted"]
    page = login(client, world.users[persona]).get(url)
    if persona in {"owner", "admin"}:
        # The page itself offers the newcomer: autocomplete would leave the select
        # empty and fetch choices from an endpoint that answers Owners 403.
        body = page.content.decode()
        assert f'<option value="{newcomer.pk}">{newcomer.username}</option>' in body
        assert "admin-autocomplete" not in body
    client.post(url, _membership_post(world.team, newcomer, Role.DEVELOPER))
    added = Membership.objects.filter(user=world.users["granted"], team=world.team, role=Role.DEVELOPER).exists()
    assert added is (persona in {"owner", "admin"})


# 9. Policy that moved into accounts.permissions.


@pytest.mark.parametrize("persona", ALL)
def test_platform_objects_are_managed_by_platform_admins(world, persona):
    request = RequestFactory().get("/")
    request.user = world.users[persona]
    expected = persona == "admin"
    registry = admin_site._registry
    assert registry[DeployKey].has_add_permission(request) is expected
    assert registry[ApiToken].has_add_permission(request) is expected
    assert registry[Host].has_delete_permission(request) is expected
    assert registry[Team].has_add_permission(request) is expected
    assert registry[Team].has_delete_permission(request) is expected


def test_teams_user_maintains_and_visible_teams(world):
    assert set(permissions.teams_user_maintains(world.users["owner"])) == {world.team}
    assert not permissions.teams_user_maintains(world.users["developer"]).exists()
    assert set(permissions.visible_teams(world.users["guest"])) == {world.team}
    assert set(permissions.visible_teams(world.users["admin"])) == {world.team, world.other_team}
    assert permissions.can_anywhere(world.users["developer"], Action.SUBMIT)
    assert not permissions.can_anywhere(world.users["guest"], Action.SUBMIT)
