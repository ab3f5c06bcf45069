"""Admin lists and searches show, and answer questions about, only what the
user may see: Guests see ticket status, not commits or host addresses."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from releases.models import Release, Ticket

from . import helpers

COMMIT = "c0ffee1234" + "5" * 30
REPO = "ssh://git@git.example.com/hidden-repository-name.git"


@pytest.fixture
def records(world):
    ticket = helpers.make_ticket(world.project, world.users["developer"], Ticket.Status.SUCCEEDED, commit=COMMIT,
                                 title="ship it")
    host = world.project.hosts.get()
    Release.objects.create(project=world.project, host=host, name="20260101-120000-1", commit=COMMIT, ticket=ticket,
                           is_live=True, switched_at=timezone.now())
    world.project.repo_url = REPO
    world.project.save()
    return ticket, host


def _get(client, user, name: str, query: str = "") -> str:
    client.force_login(user)
    return client.get(reverse(f"admin:{name}") + (f"?q={query}" if query else "")).content.decode()


@pytest.mark.parametrize("persona,details", [("guest", False), ("reporter", True), ("admin", True)])
def test_the_ticket_list_shows_commits_only_with_details(client, world, records, persona, details):
    body = _get(client, world.users[persona], "releases_ticket_changelist")
    assert "ship it" in body  # Guests still see the ticket and its status
    assert (COMMIT[:10] in body) is details


@pytest.mark.parametrize("persona,details", [("guest", False), ("reporter", True)])
def test_searching_tickets_by_commit_answers_only_with_details(client, world, records, persona, details):
    body = _get(client, world.users[persona], "releases_ticket_changelist", COMMIT[:12])
    assert ("ship it" in body) is details
    assert "ship it" in _get(client, world.users[persona], "releases_ticket_changelist", "ship")


@pytest.mark.parametrize("persona,details", [("guest", False), ("reporter", True)])
def test_the_release_list_shows_hosts_and_commits_only_with_details(client, world, records, persona, details):
    _, host = records
    body = _get(client, world.users[persona], "releases_release_changelist")
    assert (host.address in body) is details
    assert (COMMIT in body) is details


@pytest.mark.parametrize("persona,details", [("guest", False), ("developer", True), ("admin", True)])
def test_searching_projects_by_repository_answers_only_with_details(client, world, records, persona, details):
    body = _get(client, world.users[persona], "projects_project_changelist", "hidden-repository")
    assert (f">{world.project.name}<" in body) is details
    assert f">{world.project.name}<" in _get(client, world.users[persona], "projects_project_changelist", "webs")
