"""Promote, Cancel (of a waiting rollout) and Retry on the ticket page, over
the API and in the admin, and the failed notification naming the batch."""

from __future__ import annotations

from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from notifications.events import ticket_message
from notifications.models import Event
from releases import workflow
from releases.models import DeployRun, Ticket

from . import helpers

S = Ticket.Status


def waiting(world, author: str = "developer") -> Ticket:
    ticket = helpers.make_ticket(world.project, world.users[author], S.DEPLOYING)
    run = DeployRun.objects.create(ticket=ticket, number=1, status=DeployRun.Status.RUNNING, started_at=timezone.now())
    workflow.wait_for_promote(run, 2, 2)
    ticket.refresh_from_db()
    return ticket


def failed(world) -> Ticket:
    ticket = helpers.make_ticket(world.project, world.users["developer"], S.FAILED)
    DeployRun.objects.create(ticket=ticket, number=1, status=DeployRun.Status.FAILED, failed_batch="2/3",
                             release_name="20260101-000000-1", commit="c" * 40)
    return ticket


def test_the_ticket_page_offers_promote_and_cancel_while_the_rollout_waits(client, world):
    ticket = waiting(world)
    client.force_login(world.users["developer"])
    page = client.get(reverse("ticket_detail", args=[ticket.pk])).content.decode()
    assert 'id="btn-promote"' in page and 'id="waiting-promote"' in page and "Waiting for promote" in page
    assert 'id="btn-cancel"' in page and "Cancel and switch back" in page and "data-confirm=" in page
    client.force_login(world.users["reporter"])
    page = client.get(reverse("ticket_detail", args=[ticket.pk])).content.decode()
    assert 'id="btn-promote"' not in page and 'id="btn-cancel"' not in page


def test_pressing_promote_moves_the_ticket_on(client, world):
    ticket = waiting(world)
    client.force_login(world.users["developer"])
    response = client.post(reverse("ticket_promote", args=[ticket.pk]), follow=True)
    assert "Promoted: the next batch switches." in response.content.decode()
    ticket.refresh_from_db()
    assert ticket.status == S.DEPLOYING


def test_a_reporter_cannot_promote(client, world):
    ticket = waiting(world)
    client.force_login(world.users["reporter"])
    assert client.post(reverse("ticket_promote", args=[ticket.pk])).status_code == 403
    ticket.refresh_from_db()
    assert ticket.status == S.WAITING


def test_pressing_cancel_on_a_waiting_ticket_says_the_hosts_go_back(client, world):
    ticket = waiting(world)
    client.force_login(world.users["developer"])
    response = client.post(reverse("ticket_cancel", args=[ticket.pk]), follow=True)
    page = response.content.decode()
    assert "Cancelling: the rollout stops and the hosts it switched go back" in page
    assert 'id="cancelling-note"' in page and 'data-status="cancelling"' in page
    assert 'id="btn-cancel"' not in page and 'id="btn-promote"' not in page
    ticket.refresh_from_db()
    assert ticket.status == S.CANCELLING


def test_the_admin_cancel_action_says_a_waiting_rollout_is_only_cancelling(client, world):
    rollout, pending = waiting(world), helpers.make_ticket(world.project, world.users["developer"], S.PENDING)
    client.force_login(world.users["developer"])
    response = client.post(reverse("admin:releases_ticket_changelist"),
                           {"action": "cancel", "_selected_action": [rollout.pk, pending.pk]}, follow=True)
    said = [str(m) for m in response.context["messages"]]
    assert said == ["Cancelled 1 ticket.", "Cancelling 1 rollout: its hosts go back first."]
    rollout.refresh_from_db()
    pending.refresh_from_db()
    assert (rollout.status, pending.status) == (S.CANCELLING, S.CANCELLED)


def test_the_page_names_the_failed_batch_and_offers_retry(client, world, django_capture_on_commit_callbacks):
    ticket = failed(world)
    client.force_login(world.users["developer"])
    page = client.get(reverse("ticket_detail", args=[ticket.pk])).content.decode()
    assert 'id="btn-retry"' in page and "batch 2/3 failed" in page
    with django_capture_on_commit_callbacks(execute=False):
        client.post(reverse("ticket_retry", args=[ticket.pk]))
    ticket.refresh_from_db()
    assert ticket.status == S.QUEUED and ticket.latest_run().resumes.number == 1


def test_the_api_promotes_and_retries(world, django_capture_on_commit_callbacks):
    api = APIClient()
    api.force_authenticate(world.users["developer"])
    ticket = waiting(world)
    assert api.post(f"/api/tickets/{ticket.pk}/promote/").json()["status"] == S.DEPLOYING
    assert api.post(f"/api/tickets/{ticket.pk}/promote/").status_code == 409  # not waiting any more


def test_the_api_cancels_a_waiting_rollout_once_and_only_for_who_may_promote(world):
    api = APIClient()
    ticket = waiting(world)
    api.force_authenticate(world.users["reporter"])
    refused = api.post(f"/api/tickets/{ticket.pk}/cancel/", {}, format="json")
    assert refused.status_code == 403
    api.force_authenticate(world.users["developer"])
    response = api.post(f"/api/tickets/{ticket.pk}/cancel/", {"note": "wrong build"}, format="json")
    assert response.status_code == 202  # accepted: the worker switches back, then it is cancelled
    assert response.json()["status"] == S.CANCELLING
    assert ticket.latest_run().status == DeployRun.Status.CANCELLING
    assert api.post(f"/api/tickets/{ticket.pk}/cancel/", {}, format="json").status_code == 409
    assert api.post(f"/api/tickets/{ticket.pk}/promote/").status_code == 409


def test_the_api_still_cancels_a_ticket_that_never_ran_at_once(world):
    api = APIClient()
    api.force_authenticate(world.users["developer"])
    ticket = helpers.make_ticket(world.project, world.users["developer"], S.APPROVED)
    response = api.post(f"/api/tickets/{ticket.pk}/cancel/", {}, format="json")
    assert (response.status_code, response.json()["status"]) == (200, S.CANCELLED)


def test_the_api_retries_a_failed_run_once(world, django_capture_on_commit_callbacks):
    api = APIClient()
    api.force_authenticate(world.users["developer"])
    again = failed(world)
    with django_capture_on_commit_callbacks(execute=False):
        response = api.post(f"/api/tickets/{again.pk}/retry/", {}, format="json")
    assert response.status_code == 202 and response.json()["status"] == S.QUEUED
    assert api.post(f"/api/tickets/{again.pk}/retry/", {}, format="json").status_code == 409


def test_the_failed_notification_names_the_batch(world):
    ticket = failed(world)
    message = ticket_message(ticket, Event.FAILED, None)
    assert message.note == "Batch 2/3 of the rollout failed."
