"""Actions never just vanish: what a ticket's status offers but the policy
refuses is shown disabled with the policy's reason, and a pending ticket says
whom it waits for."""

from __future__ import annotations

from django.urls import reverse

from releases.models import Ticket
from tests import helpers
from tests.test_views_tickets import finished_deploy, login

S = Ticket.Status


def _page(client, world, persona: str, ticket: Ticket) -> str:
    return login(client, world, persona).get(reverse("ticket_detail", args=[ticket.pk])).content.decode()


def test_the_submitter_sees_approve_disabled_with_why_and_whom_it_waits_for(client, world):
    ticket = helpers.make_ticket(world.project, world.users["maintainer"], S.PENDING)
    body = _page(client, world, "maintainer", ticket)
    assert 'id="btn-approve"' not in body and 'id="btn-approve-blocked"' in body
    assert "You submitted this ticket; in this environment someone else must approve it." in body
    assert "Waiting for approval by a Maintainer or Owner of web other than its submitter." in body
    owner = _page(client, world, "owner", ticket)
    assert 'id="btn-approve"' in owner and "btn-approve-blocked" not in owner


def test_a_developer_is_told_who_approves_and_who_rolls_back(client, world):
    pending = helpers.make_ticket(world.project, world.users["developer"], S.PENDING)
    body = _page(client, world, "developer", pending)
    assert 'id="btn-approve-blocked"' in body and "Only Maintainers and Owners of web approve its tickets." in body
    assert "someone else must approve" not in body  # he may not approve at all, own ticket or not
    deployed = finished_deploy(world)
    body = _page(client, world, "developer", deployed)
    assert 'id="btn-rollback-blocked"' in body and "Only Maintainers and Owners of web roll back." in body


def test_someone_elses_approved_ticket_tells_a_developer_who_deploys_it(client, world):
    ticket = helpers.make_ticket(world.project, world.users["maintainer"], S.APPROVED)
    body = _page(client, world, "developer", ticket)
    assert 'id="btn-deploy-blocked"' in body
    assert "Only its submitter or a Maintainer of web deploys this ticket." in body


def test_guests_and_reporters_see_no_disabled_buttons_but_the_waiting_line(client, world):
    ticket = helpers.make_ticket(world.project, world.users["developer"], S.PENDING)
    for persona in ("guest", "reporter"):
        body = _page(client, world, persona, ticket)
        assert "-blocked" not in body
        assert "Waiting for approval by a Maintainer or Owner of web" in body


def test_a_queued_run_is_cancelled_by_a_button_that_says_nothing_changes(client, world):
    ticket = helpers.make_ticket(world.project, world.users["developer"], S.QUEUED)
    body = _page(client, world, "developer", ticket)
    assert "Cancel before it starts" in body and "changes nothing on the hosts" in body
