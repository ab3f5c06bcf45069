"""Every ticket event and configuration change becomes an audit entry with its
actor, origin, source address and what changed; secrets only as "changed"."""

from __future__ import annotations

import json

import pytest
from django.db import transaction
from django.db.models.signals import post_save
from django.utils import timezone
from rest_framework.test import APIClient

from accounts import grants
from accounts.models import ApiToken, Membership, Role
from audit import receivers
from audit.changes import SECRET
from audit.context import current_source
from audit.models import AuditEntry, Change, Kind, Origin
from projects import secrets
from projects.keys import create_key
from projects.models import Project
from releases import workflow
from releases.models import DeployRun, ProjectLock, Ticket, TicketAction, TicketEvent

from . import helpers

SECRET_VALUE = "s3cr3t-value-that-must-never-be-logged"


def latest(**filters) -> AuditEntry:
    return AuditEntry.objects.filter(**filters).order_by("-id").first()


def test_a_project_change_records_each_changed_field_before_and_after(world):
    project = Project.objects.get(pk=world.project.pk)
    project.keep_releases, project.description = 5, "the public site"
    project.save()
    entry = latest(kind=Kind.PROJECT, action=Change.CHANGED)
    assert entry.project_id == project.pk and entry.project_name == "website"
    assert entry.team_id == world.team.pk
    assert entry.changes == {"keep_releases": [10, 5], "description": ["", "the public site"]}


def test_an_unchanged_save_records_nothing(world):
    before = AuditEntry.objects.count()
    Project.objects.get(pk=world.project.pk).save()
    assert AuditEntry.objects.count() == before


def test_linking_hosts_records_the_host_list_before_and_after(world):
    old = world.project.hosts.get()
    new = helpers.make_host("10.1.1.1")
    world.project.hosts.add(new)
    entry = latest(kind=Kind.PROJECT, project_id=world.project.pk)
    assert entry.changes == {"hosts": [[old.name], sorted([old.name, "10.1.1.1"])]}
    world.project.hosts.remove(old)
    assert latest(kind=Kind.PROJECT).changes == {"hosts": [sorted([old.name, "10.1.1.1"]), ["10.1.1.1"]]}


def test_linking_from_the_hosts_side_is_recorded_on_the_project(world):
    host = helpers.make_host("10.1.1.2")
    host.projects.add(world.other_project)
    entry = latest(kind=Kind.PROJECT)
    assert entry.project_id == world.other_project.pk
    assert "10.1.1.2" in entry.changes["hosts"][1] and "10.1.1.2" not in entry.changes["hosts"][0]


def test_a_shared_host_change_is_recorded_in_each_of_its_projects(world):
    host = helpers.make_host("10.1.1.3")
    world.project.hosts.add(host)
    world.other_project.hosts.add(host)
    host.label = "db"
    host.save()
    entries = AuditEntry.objects.filter(kind=Kind.HOST, action=Change.CHANGED)
    assert sorted(entries.values_list("project_id", flat=True)) == sorted([world.project.pk, world.other_project.pk])
    assert all(e.changes == {"label": ["", "db"]} for e in entries)


def test_a_secret_value_is_recorded_as_changed_only(world):
    secrets.set_secret(world.users["maintainer"], world.project, "NPM_TOKEN", SECRET_VALUE)
    secrets.set_secret(world.users["maintainer"], world.project, "NPM_TOKEN", SECRET_VALUE + "2")
    created, changed = AuditEntry.objects.filter(kind=Kind.SECRET).order_by("id")
    assert created.changes["name"] == [None, "NPM_TOKEN"]
    assert created.changes["value_encrypted"] == SECRET
    assert changed.changes == {"value_encrypted": SECRET}
    assert changed.project_id == world.project.pk
    dumped = json.dumps(list(AuditEntry.objects.values()), default=str)
    assert SECRET_VALUE not in dumped
    stored = world.project.secrets.get().value_encrypted
    assert stored not in dumped  # not even the ciphertext


def test_a_deploy_keys_private_half_is_never_recorded(world):
    key = create_key("ops-key", team=world.team)
    entry = latest(kind=Kind.DEPLOY_KEY, action=Change.CREATED)
    assert entry.changes["private_key_encrypted"] == SECRET
    assert entry.changes["public_key"] == [None, key.public_key]  # the public half is public
    assert entry.team_id == world.team.pk
    assert key.private_key_encrypted not in json.dumps(entry.changes)


def test_a_token_is_recorded_without_its_hash_and_its_revocation_too(world):
    token, raw = ApiToken.issue(world.users["developer"], "ci")
    created = latest(kind=Kind.TOKEN)
    assert created.changes["key_hash"] == SECRET
    assert raw not in json.dumps(created.changes) and token.key_hash not in json.dumps(created.changes)
    token.revoke()
    revoked = latest(kind=Kind.TOKEN)
    assert revoked.action == Change.CHANGED and list(revoked.changes) == ["revoked_at"]
    assert revoked.changes["revoked_at"][0] is None and revoked.changes["revoked_at"][1]


def test_a_role_change_records_the_role_names(world):
    membership = Membership.objects.get(user=world.users["developer"], team=world.team)
    membership.role = Role.MAINTAINER
    membership.save()
    entry = latest(kind=Kind.MEMBER)
    assert entry.changes == {"role": ["Developer", "Maintainer"]}
    assert entry.team_id == world.team.pk


def test_a_grant_and_its_revocation_are_recorded_on_the_project(world):
    grants.grant(world.users["owner"], world.users["outsider"], "deploy_any", world.project)
    grants.revoke(world.users["owner"], world.users["outsider"], "deploy_any", world.project)
    granted, revoked = AuditEntry.objects.filter(kind=Kind.GRANT).order_by("id")
    assert (granted.action, revoked.action) == (Change.CREATED, Change.DELETED)
    assert granted.object_repr == "walle_deploy_any → outsider" == revoked.object_repr
    assert granted.project_id == revoked.project_id == world.project.pk


def test_every_ticket_event_becomes_an_entry_with_its_status_move(world):
    ticket = helpers.make_ticket(world.project, world.users["developer"], title="ship search")
    workflow.approve(world.users["maintainer"], ticket, "looks good", version=ticket.version)
    submitted, approved = AuditEntry.objects.filter(kind=Kind.TICKET).order_by("id")
    assert submitted.action == TicketAction.SUBMIT and submitted.actor_name == "developer"
    assert approved.action == TicketAction.APPROVE and approved.actor == world.users["maintainer"]
    assert approved.changes == {"status": [Ticket.Status.PENDING, Ticket.Status.APPROVED]}
    assert approved.note == "looks good"
    assert approved.object_repr == f"#{ticket.pk} ship search" and approved.object_id == str(ticket.pk)
    assert approved.project_id == world.project.pk
    assert AuditEntry.objects.filter(kind__in=[Kind.TICKET, Kind.LOCK]).count() == TicketEvent.objects.count()


def test_a_lock_release_is_recorded_as_a_lock_entry(world):
    ticket = helpers.make_ticket(world.project, world.users["developer"], Ticket.Status.DEPLOYING)
    run = DeployRun.objects.create(ticket=ticket, number=1, status=DeployRun.Status.RUNNING)
    now = timezone.now()
    ProjectLock.objects.create(project=world.project, run=run, owner="w1", acquired_at=now, heartbeat_at=now,
                               lease_seconds=90)
    workflow.release_lock(world.users["maintainer"], world.project)
    entry = latest(kind=Kind.LOCK)
    assert entry.action == TicketAction.RELEASE_LOCK and entry.actor_name == "maintainer" and entry.note == "run 1"


def test_changes_outside_a_request_are_from_the_worker_without_actor(world):
    world.team.description = "web people"
    world.team.save()
    entry = latest(kind=Kind.GROUP)
    assert entry.origin == Origin.WORKER and entry.actor is None and entry.source_address == ""


def test_a_rolled_back_change_leaves_no_entry(world):
    before = AuditEntry.objects.count()
    with pytest.raises(RuntimeError), transaction.atomic():
        helpers.make_host("10.1.1.9")
        raise RuntimeError("abort")
    assert AuditEntry.objects.count() == before


def test_a_web_request_records_its_user_and_address(world, client):
    client.force_login(world.users["maintainer"])
    response = client.post(f"/admin/projects/project/{world.project.pk}/secrets/",
                           {"name": "API_KEY", "value": SECRET_VALUE}, REMOTE_ADDR="203.0.113.9")
    assert response.status_code == 302
    entry = latest(kind=Kind.SECRET)
    assert entry.actor == world.users["maintainer"] and entry.actor_name == "maintainer"
    assert entry.origin == Origin.WEB and entry.source_address == "203.0.113.9"


def test_a_forwarded_address_counts_only_behind_the_configured_proxies(world, client, settings):
    client.force_login(world.users["maintainer"])
    url = f"/admin/projects/project/{world.project.pk}/secrets/"
    client.post(url, {"name": "A", "value": "x"}, REMOTE_ADDR="198.51.100.1", HTTP_X_FORWARDED_FOR="10.9.9.9")
    assert latest(kind=Kind.SECRET).source_address == "198.51.100.1"
    settings.WALLE_PROXY_COUNT = 1
    client.post(url, {"name": "B", "value": "x"}, REMOTE_ADDR="127.0.0.1",
                HTTP_X_FORWARDED_FOR="10.9.9.9, 203.0.113.5")
    assert latest(kind=Kind.SECRET).source_address == "203.0.113.5"


def test_a_token_api_call_acts_as_the_tokens_user(world):
    ticket = helpers.make_ticket(world.project, world.users["developer"])
    _, raw = ApiToken.issue(world.users["maintainer"], "ci")
    seen = []

    def look(sender, **kwargs) -> None:  # what the recorder sees while the API call saves
        seen.append(current_source())

    post_save.connect(look, sender=TicketEvent, weak=False, dispatch_uid="test-look")
    try:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        response = client.post(f"/api/tickets/{ticket.pk}/approve/", {"version": ticket.version}, format="json",
                               REMOTE_ADDR="192.0.2.44")
    finally:
        post_save.disconnect(sender=TicketEvent, dispatch_uid="test-look")
    assert response.status_code == 200, response.content
    assert [(s.user, s.origin, s.address) for s in seen] == [(world.users["maintainer"], Origin.WEB, "192.0.2.44")]
    entry = latest(kind=Kind.TICKET, action=TicketAction.APPROVE)
    assert (entry.actor_name, entry.source_address) == ("maintainer", "192.0.2.44")


def test_tracked_models_that_are_not_installed_are_skipped(monkeypatch):
    monkeypatch.setattr(receivers, "TRACKED", [("projects.Project", Kind.PROJECT), ("nosuchapp.Channel", Kind.CHANNEL),
                                               ("projects.NoSuchModel", Kind.DEPLOY_WINDOW)])
    assert receivers.tracked_models() == [(Project, Kind.PROJECT)]


def test_making_someone_a_platform_admin_is_recorded_but_logging_in_is_not(world, client):
    user = world.users["developer"]
    assert client.login(username="developer", password=helpers.PASSWORD)  # updates last_login only
    user.refresh_from_db()
    assert user.last_login is not None
    assert not AuditEntry.objects.filter(kind=Kind.USER, object_id=str(user.pk), action=Change.CHANGED).exists()
    user.is_superuser = True
    user.set_password("another-long-password-77")
    user.save()
    entry = latest(kind=Kind.USER, action=Change.CHANGED)
    assert entry.changes == {"password": SECRET, "is_superuser": [False, True]}
    assert entry.project_id is None and entry.team_id is None  # platform admins only


def test_deleting_a_secret_and_a_shared_host_is_recorded_in_their_projects(world):
    secrets.set_secret(world.users["maintainer"], world.project, "NPM_TOKEN", SECRET_VALUE)
    assert secrets.delete_secret(world.users["maintainer"], world.project, "NPM_TOKEN")
    gone = latest(kind=Kind.SECRET)
    assert gone.action == Change.DELETED and gone.project_id == world.project.pk
    assert gone.changes["value_encrypted"] == SECRET and gone.changes["name"] == ["NPM_TOKEN", None]
    host = helpers.make_host("10.1.1.4")
    world.project.hosts.add(host)
    world.other_project.hosts.add(host)
    host.delete()
    deleted = AuditEntry.objects.filter(kind=Kind.HOST, action=Change.DELETED)
    assert sorted(deleted.values_list("project_id", flat=True)) == sorted([world.project.pk, world.other_project.pk])
    assert {e.changes["address"][0] for e in deleted} == {"10.1.1.4"}
