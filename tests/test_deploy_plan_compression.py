"""A project's "compress transfers" switch reaches the engine's plan, and the
project API shows it."""

from __future__ import annotations

from accounts.models import ApiToken
from engine.plan import Secret
from releases import plans
from releases.models import DeployRun, Ticket

from . import helpers


def _plan(project, author):
    ticket = helpers.make_ticket(project, author, Ticket.Status.QUEUED)
    run = DeployRun.objects.create(ticket=ticket, number=1)
    return plans.build_deploy_plan(run, list(project.hosts.all()), Secret("k"))


def test_transfers_are_compressed_unless_the_project_turns_it_off(world):
    developer = world.users["developer"]
    assert world.project.compress_transfer is True
    assert _plan(world.project, developer).compress is True
    world.project.compress_transfer = False
    world.project.save()
    assert _plan(world.project, developer).compress is False


def test_the_project_api_shows_whether_transfers_are_compressed(world, client):
    _, token = ApiToken.issue(world.users["maintainer"], "lan")
    world.project.compress_transfer = False
    world.project.save()
    response = client.get(f"/api/projects/{world.project.pk}/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200, response.content
    assert response.json()["compress_transfer"] is False
