"""A deploy pressed on the ticket page and run by the real worker: the press
is recorded with its person and address, the worker's own moves as the
worker's, with no actor and no address."""

from __future__ import annotations

import pytest

from audit.models import AuditEntry, Kind, Origin
from releases.models import Ticket, TicketAction
from tests.deploy_fixtures import open_approved_ticket, wait_for

pytestmark = [pytest.mark.sshd, pytest.mark.worker]


def test_the_workers_events_are_recorded_as_the_workers(site, qcluster, client):
    ticket = open_approved_ticket(site, "v1")
    client.force_login(site.users["developer"])
    response = client.post(f"/tickets/{ticket.pk}/deploy/", REMOTE_ADDR="198.51.100.20")
    assert response.status_code == 302
    wait_for(lambda: Ticket.objects.get(pk=ticket.pk).status == Ticket.Status.SUCCEEDED, timeout=180)
    entries = AuditEntry.objects.filter(kind=Kind.TICKET, object_id=str(ticket.pk))
    press = entries.get(action=TicketAction.DEPLOY)
    assert (press.actor_name, press.origin, press.source_address) == ("developer", Origin.WEB, "198.51.100.20")
    for action in ("start", "succeed"):
        moved = entries.get(action=action)
        assert (moved.actor_id, moved.actor_name, moved.origin, moved.source_address) == (None, "", Origin.WORKER, "")
    assert entries.get(action=TicketAction.SUCCEED).changes == {
        "status": [Ticket.Status.DEPLOYING, Ticket.Status.SUCCEEDED]
    }
