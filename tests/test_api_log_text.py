"""The console log for curl: ``Accept: text/plain`` (or ``?format=txt``) gives
plain lines, paging hints as headers; errors read as text too."""

from __future__ import annotations

from rest_framework.test import APIClient

from releases.models import Ticket
from tests import helpers
from tests.test_views_tickets import make_run


def _client(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_the_log_as_plain_text_one_line_per_console_line(world):
    ticket = helpers.make_ticket(world.project, world.users["developer"], Ticket.Status.DEPLOYING)
    run = make_run(ticket, lines=3)
    response = _client(world.users["reporter"]).get(f"/api/tickets/{ticket.pk}/log/?after=1",
                                                    HTTP_ACCEPT="text/plain")
    assert response.status_code == 200 and response["Content-Type"] == "text/plain; charset=utf-8"
    lines = response.content.decode().splitlines()
    host = run.log_lines.first().host
    assert len(lines) == 2 and lines[0].endswith(f" {host} transfer stdout: line 2 <b>bold</b>")
    assert response["X-Walle-Next-After"] == "3" and response["X-Walle-More"] == "false"
    assert response["X-Walle-Status"] == Ticket.Status.DEPLOYING
    same = _client(world.users["reporter"]).get(f"/api/tickets/{ticket.pk}/log/?after=1&format=txt")
    assert same.content == response.content
    json = _client(world.users["reporter"]).get(f"/api/tickets/{ticket.pk}/log/?after=1")
    assert [line["seq"] for line in json.json()["lines"]] == [2, 3]  # JSON stays the default


def test_a_refused_log_request_reads_as_text_without_lines(world):
    ticket = helpers.make_ticket(world.project, world.users["developer"], Ticket.Status.DEPLOYING)
    make_run(ticket, lines=2)
    response = _client(world.users["guest"]).get(f"/api/tickets/{ticket.pk}/log/", HTTP_ACCEPT="text/plain")
    assert response.status_code == 403
    assert "line 1" not in response.content.decode() and response.content.decode().strip()
