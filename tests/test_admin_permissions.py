"""The permission matrix, through the Django admin, for every persona."""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts import grants
from accounts.permissions import Action
from projects.models import Host, Project
from releases.models import DeployRun, Ticket

from . import helpers

ALL = ["guest", "reporter", "developer", "maintainer", "owner", "outsider", "granted", "admin"]
SEES = {"guest", "reporter", "developer", "maintainer", "owner", "granted", "admin"}
DETAILS = {"reporter", "developer", "maintainer", "owner", "granted", "admin"}
CONFIGURES = {"maintainer", "owner", "admin"}
MANAGES = {"owner", "admin"}
APPROVES = {"maintainer", "owner", "granted", "admin"}


@pytest.fixture
def w(world):
    # "granted" holds one object permission on the project and no membership.
    grants.grant(world.users["owner"], world.users["granted"], Action.APPROVE, world.project)
    return world


def login(client, user):
    client.force_login(user)
    return client


@pytest.mark.parametrize("persona", ALL)
def test_project_list_shows_only_visible_projects(client, w, persona):
    body = login(client, w.users[persona]).get(reverse("admin:projects_project_changelist")).content.decode()
    assert ("website" in body) is (persona in SEES)
    assert ("billing" in body) is (persona in {"outsider", "admin"})


@pytest.mark.parametrize("persona", ALL)
def test_project_config_opens_for_reporters_and_up(client, w, persona):
    url = reverse("admin:projects_project_change", args=[w.project.pk])
    response = login(client, w.users[persona]).get(url)
    if persona in DETAILS:
        assert response.status_code == 200
        assert ('name="_save"' in response.content.decode()) is (persona in CONFIGURES)
    else:
        # Django admin answers a missing object permission by redirecting away or 403.
        assert response.status_code in (302, 403)
        assert w.project.repo_url not in response.content.decode()


@pytest.mark.parametrize("persona", ALL)
def test_only_maintainers_change_project_config(client, w, persona):
    project = w.project
    url = reverse("admin:projects_project_change", args=[project.pk])
    data = _project_form(project, description="changed by " + persona)
    login(client, w.users[persona]).post(url, data)
    project.refresh_from_db()
    assert (project.description == "changed by " + persona) is (persona in CONFIGURES)


def _project_form(project: Project, **changes) -> dict:
    data = {
        "name": project.name, "slug": project.slug, "team": project.team_id,
        "environment": project.environment_id, "description": project.description, "is_active": "on",
        "repo_url": project.repo_url, "repo_mode": project.repo_mode, "deploy_key": "",
        "workspace": "", "excludes": "", "run_user": project.run_user, "webroot": project.webroot,
        "release_library": "", "keep_releases": project.keep_releases, "max_parallel": 10,
        "hosts": [h.pk for h in project.hosts.all()], "host_lines": "", "pre_deploy": "",
        "post_deploy": "", "pre_release": "", "post_release": "", "post_release_delay": 0,
        # The rollout group (a folded fieldset: a browser always posts it).
        "rollout_strategy": project.rollout_strategy, "canary_hosts": project.canary_hosts,
        "batch_size": project.batch_size, "batch_percent": project.batch_percent, "health_path": "",
        "health_port": project.health_port, "health_host_header": "", "health_status": project.health_status,
        "health_text": "", "health_timeout": project.health_timeout, "health_retries": project.health_retries,
        "health_command": "",
    }
    data.update(changes)
    return data


def test_pasted_host_lines_create_and_link_hosts(client, w):
    url = reverse("admin:projects_project_change", args=[w.project.pk])
    data = _project_form(w.project, host_lines="10.9.0.1\n10.9.0.2:2222\n")
    response = login(client, w.users["maintainer"]).post(url, data)
    assert response.status_code == 302
    names = {h.name for h in w.project.hosts.all()}
    assert {"10.9.0.1", "10.9.0.2:2222"} <= names


@pytest.mark.parametrize("bad", ["10.0.0.1:99999", "10.0.0.1;id", "-oProxyCommand=x", "a b", "10.0.0.1:ssh"])
def test_malformed_host_lines_are_rejected_and_change_nothing(client, w, bad):
    url = reverse("admin:projects_project_change", args=[w.project.pk])
    before = Host.objects.count()
    response = login(client, w.users["maintainer"]).post(url, _project_form(w.project, host_lines=f"10.9.0.9\n{bad}"))
    assert response.status_code == 200
    assert "line 2" in response.content.decode()
    assert Host.objects.count() == before


@pytest.mark.parametrize(
    "field,value",
    [("webroot", "/var/www;rm -rf /"), ("webroot", "/"), ("webroot", "relative/x"), ("release_library", "/data/../etc"),
     ("repo_url", "ext::sh -c touch% /tmp/pwned"), ("repo_url", "ssh://-oProxyCommand=touch/x"), ("repo_url", "file:///etc"),
     ("run_user", "root;id"), ("keep_releases", "1")],
)
def test_hostile_project_values_are_rejected(client, w, field, value):
    url = reverse("admin:projects_project_change", args=[w.project.pk])
    response = login(client, w.users["maintainer"]).post(url, _project_form(w.project, **{field: value}))
    assert response.status_code == 200  # form redisplayed with an error
    w.project.refresh_from_db()
    assert getattr(w.project, field) != value


@pytest.mark.parametrize("persona", ALL)
def test_only_owners_delete_projects(client, w, persona):
    project = helpers.make_project(w.team, name="doomed", slug="doomed")
    url = reverse("admin:projects_project_delete", args=[project.pk])
    login(client, w.users[persona]).post(url, {"post": "yes"})
    assert Project.objects.filter(pk=project.pk).exists() is (persona not in MANAGES)


@pytest.mark.parametrize("persona", ALL)
def test_only_owners_manage_members(client, w, persona):
    url = reverse("admin:accounts_team_change", args=[w.team.pk])
    response = login(client, w.users[persona]).get(url)
    can_edit = persona in MANAGES
    body = response.content.decode()
    if response.status_code == 200:
        assert ('name="_save"' in body) is can_edit
    else:
        assert not can_edit


@pytest.mark.parametrize("persona", ALL)
def test_ticket_list_shows_only_visible_tickets(client, w, persona):
    mine = helpers.make_ticket(w.project, w.users["developer"], title="ship-website")
    theirs = helpers.make_ticket(w.other_project, w.users["outsider"], title="ship-billing")
    body = login(client, w.users[persona]).get(reverse("admin:releases_ticket_changelist")).content.decode()
    assert (mine.title in body) is (persona in SEES)
    assert (theirs.title in body) is (persona in {"outsider", "admin"})


def _action(client, name, ticket):
    return client.post(
        reverse("admin:releases_ticket_changelist"), {"action": name, "_selected_action": [ticket.pk]}
    )


def _confirm_approval(client, ticket, version: int):
    """The second step of the bulk approval: the confirmation page's form."""
    return client.post(reverse("admin:releases_ticket_changelist"), {
        "action": "approve", "_selected_action": [ticket.pk], "confirm": "yes", f"version_{ticket.pk}": version,
    })


@pytest.mark.parametrize("persona", ALL)
def test_admin_approve_action_follows_the_policy(client, w, persona):
    ticket = helpers.make_ticket(w.project, w.users["developer"])
    login(client, w.users[persona])
    _action(client, "approve", ticket)
    _confirm_approval(client, ticket, ticket.version)
    ticket.refresh_from_db()
    assert (ticket.status == Ticket.Status.APPROVED) is (persona in APPROVES)
    assert ticket.events.filter(action="approve").count() == (1 if persona in APPROVES else 0)


@pytest.mark.parametrize("persona", ALL)
def test_admin_deploy_action_needs_own_ticket_or_maintainer(client, w, persona, django_capture_on_commit_callbacks):
    own = helpers.make_ticket(w.project, w.users[persona], Ticket.Status.APPROVED)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        _action(login(client, w.users[persona]), "deploy", own)
    own.refresh_from_db()
    allowed = persona in {"developer", "maintainer", "owner", "admin"}
    assert (own.status == Ticket.Status.QUEUED) is allowed
    assert DeployRun.objects.filter(ticket=own).exists() is allowed
    assert len(callbacks) == (1 if allowed else 0)


@pytest.mark.parametrize("persona", ALL)
def test_deploy_logs_open_for_reporters_and_up(client, w, persona):
    ticket = helpers.make_ticket(w.project, w.users["developer"], Ticket.Status.FAILED)
    run = DeployRun.objects.create(ticket=ticket, number=1, status=DeployRun.Status.FAILED)
    run.log_lines.create(seq=1, stage="transfer", stream="stdout", text="secret-free log line")
    response = login(client, w.users[persona]).get(reverse("admin:releases_deployrun_change", args=[run.pk]))
    assert ("secret-free log line" in response.content.decode()) is (persona in DETAILS)


@pytest.mark.parametrize("persona", ALL)
def test_environment_rules_are_changed_by_platform_admins_only(client, w, persona):
    env = w.project.environment
    url = reverse("admin:projects_environment_change", args=[env.pk])
    login(client, w.users[persona]).post(url, {
        "name": env.name, "slug": env.slug, "order": env.order, "deploy_needs_approval": "",
        "rollback_needs_approval": "", "allow_self_approval": "on", "approvals_required": "1", "time_zone": "UTC",
        # The deploy window and freeze inlines, left empty.
        **{f"{prefix}-{name}": value for prefix in ("deploy_windows", "deploy_freezes")
           for name, value in (("TOTAL_FORMS", "0"), ("INITIAL_FORMS", "0"))},
    })
    env.refresh_from_db()
    assert env.allow_self_approval is (persona == "admin")


@pytest.mark.parametrize("persona", ALL)
def test_hosts_list_and_change_follow_project_access(client, w, persona):
    host = w.project.hosts.get()
    body = login(client, w.users[persona]).get(reverse("admin:projects_host_changelist")).content.decode()
    assert (host.address in body) is (persona in DETAILS)
    url = reverse("admin:projects_host_change", args=[host.pk])
    client.post(url, {"address": host.address, "port": 22, "label": "edited", "enabled": "on"})
    host.refresh_from_db()
    assert (host.label == "edited") is (persona in CONFIGURES)


def test_two_projects_cannot_switch_one_webroot_on_one_host(client, w):
    shared = w.project.hosts.get()
    helpers.make_project(w.team, hosts=[shared], name="website-next", slug="website-next", webroot="/data/nginx/next")
    url = reverse("admin:projects_project_change", args=[w.project.pk])
    login(client, w.users["maintainer"])
    ok = client.post(url, _project_form(w.project, description="fine"))
    assert ok.status_code == 302  # same host, different webroots
    clash = client.post(url, _project_form(w.project, webroot="/data/nginx/next"))
    assert clash.status_code == 200
    assert f"already manages /data/nginx/next on {shared.endpoint}" in clash.content.decode()
    w.project.refresh_from_db()
    assert w.project.webroot == "/data/nginx/website"


def test_admin_bulk_approval_shows_what_it_approves_and_refuses_a_ticket_changed_since(client, w):
    ticket = helpers.make_ticket(w.project, w.users["developer"], title="ship-it")
    login(client, w.users["owner"])
    page = _action(client, "approve", ticket)
    body = page.content.decode()
    assert page.status_code == 200 and "ship-it" in body and f'name="version_{ticket.pk}"' in body
    ticket.refresh_from_db()
    assert ticket.status == Ticket.Status.PENDING  # nothing approved before the confirmation
    shown = ticket.version
    Ticket.objects.filter(pk=ticket.pk).update(version=shown + 1)  # edited meanwhile
    _confirm_approval(client, ticket, shown)
    ticket.refresh_from_db()
    assert ticket.status == Ticket.Status.PENDING
    _confirm_approval(client, ticket, shown + 1)
    ticket.refresh_from_db()
    assert ticket.status == Ticket.Status.APPROVED
