"""An approval names the version of the ticket its approver reviewed: a ticket
edited between loading and clicking Approve is not approved."""

from __future__ import annotations

import re

import pytest
import yaml
from django.core.management import call_command
from django.urls import reverse
from rest_framework.test import APIClient

from releases import workflow
from releases.models import Ticket, TicketAction

from . import helpers

S = Ticket.Status
STALE = "changed since you loaded it"


@pytest.fixture
def pending(world) -> Ticket:
    return helpers.make_ticket(world.project, world.users["developer"], S.PENDING, title="ship it")


def api_as(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_every_edit_makes_a_new_version(world, pending):
    first = pending.version
    edited = workflow.edit(world.users["developer"], pending, title="ship it now")
    assert edited.version == first + 1
    second = helpers.make_host()
    world.project.hosts.add(second)
    assert workflow.edit(world.users["developer"], edited, hosts=[second]).version == first + 2


def test_approving_a_version_edited_since_approves_nothing(world, pending):
    seen = pending.version
    workflow.edit(world.users["developer"], Ticket.objects.get(pk=pending.pk), commit="c" * 40)
    with pytest.raises(workflow.StaleTicket, match=STALE):
        workflow.approve(world.users["owner"], pending, version=seen)
    pending.refresh_from_db()
    assert (pending.status, pending.commit) == (S.PENDING, "c" * 40)
    assert not pending.events.filter(action=TicketAction.APPROVE).exists()
    approved = workflow.approve(world.users["owner"], pending, version=pending.version)
    assert approved.status == S.APPROVED


def test_rejecting_a_stale_version_is_refused_too(world, pending):
    seen = pending.version
    workflow.edit(world.users["developer"], Ticket.objects.get(pk=pending.pk), description="more")
    with pytest.raises(workflow.StaleTicket):
        workflow.reject(world.users["owner"], pending, "no", version=seen)
    pending.refresh_from_db()
    assert pending.status == S.PENDING


def test_the_page_approves_only_what_it_showed(client, world, pending):
    client.force_login(world.users["maintainer"])
    page = client.get(reverse("ticket_detail", args=[pending.pk])).content.decode()
    approve_url = reverse("ticket_approve", args=[pending.pk])
    form = re.search(rf'action="{re.escape(approve_url)}">.*?</form>', page).group(0)
    shown = int(re.search(r'name="version" value="(\d+)"', form).group(1))
    assert shown == pending.version

    # The author changes the commit while the approver looks at the page.
    workflow.edit(world.users["developer"], Ticket.objects.get(pk=pending.pk), commit="d" * 40)
    response = client.post(reverse("ticket_approve", args=[pending.pk]), {"version": shown}, follow=True)
    assert STALE in response.content.decode() and "review it again" in response.content.decode()
    pending.refresh_from_db()
    assert pending.status == S.PENDING and not pending.events.filter(action=TicketAction.APPROVE).exists()

    page = client.get(reverse("ticket_detail", args=[pending.pk])).content.decode()
    assert f'name="version" value="{pending.version}"' in page
    client.post(reverse("ticket_approve", args=[pending.pk]), {"version": pending.version})
    pending.refresh_from_db()
    assert pending.status == S.APPROVED


@pytest.mark.parametrize("posted", [{}, {"version": ""}, {"version": "x"}, {"version": "²"}, {"version": "0"}])
def test_an_approval_without_a_plain_version_is_a_400_that_changes_nothing(client, world, pending, posted):
    client.force_login(world.users["maintainer"])
    response = client.post(reverse("ticket_approve", args=[pending.pk]), posted)
    assert response.status_code == 400 and "version" in response.content.decode()
    pending.refresh_from_db()
    assert pending.status == S.PENDING


def test_the_api_refuses_a_stale_approval_with_409(world, pending):
    client = api_as(world.users["maintainer"])
    seen = client.get(f"/api/tickets/{pending.pk}/").json()["version"]
    assert seen == pending.version
    edit = api_as(world.users["developer"]).post(
        f"/api/tickets/{pending.pk}/edit/", {"title": "a different title"}, format="json")
    assert edit.status_code == 200 and edit.json()["version"] == seen + 1

    response = client.post(f"/api/tickets/{pending.pk}/approve/", {"version": seen}, format="json")
    assert response.status_code == 409 and STALE in response.json()["detail"]
    pending.refresh_from_db()
    assert pending.status == S.PENDING

    missing = client.post(f"/api/tickets/{pending.pk}/approve/", {"note": "ok"}, format="json")
    assert missing.status_code == 400 and "version" in missing.json()
    fresh = client.post(f"/api/tickets/{pending.pk}/approve/", {"version": seen + 1}, format="json")
    assert fresh.status_code == 200 and fresh.json()["status"] == S.APPROVED


def test_the_schema_documents_the_required_version(db, tmp_path):
    out = tmp_path / "schema.yml"
    call_command("spectacular", "--fail-on-warn", "--file", str(out))
    schema = yaml.safe_load(out.read_text())
    body = schema["paths"]["/api/tickets/{id}/approve/"]["post"]["requestBody"]
    assert body["required"] is True
    name = body["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    component = schema["components"]["schemas"][name]
    assert "version" in component["required"] and component["properties"]["version"]["type"] == "integer"
    assert "version" in schema["components"]["schemas"]["TicketDetail"]["properties"]
