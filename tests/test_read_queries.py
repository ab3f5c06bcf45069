"""The pages and the API read with one set of rules (releases.queries): a
ticket filter, a log page and a host's state mean the same in both."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.test import APIClient

from releases import queries
from releases.models import DeployRun, LogLine, Ticket

from . import helpers

S = Ticket.Status


@pytest.fixture
def tickets(world):
    dev = world.users["developer"]
    return {
        "login": helpers.make_ticket(world.project, dev, title="fix login", commit="abc1234" + "0" * 33),
        "search": helpers.make_ticket(world.project, world.users["maintainer"], status=S.APPROVED,
                                      title="ship search", commit="f" * 7 + "abc1234" + "0" * 26),
    }


def _api_ids(user, query: str) -> set[int]:
    client = APIClient()
    client.force_authenticate(user)
    return {t["id"] for t in client.get(f"/api/tickets/?{query}").json()["results"]}


def _page_ids(client, user, query: str, tickets) -> set[int]:
    client.force_login(user)
    body = client.get(reverse("ticket_list") + "?" + query).content.decode()
    return {t.pk for t in tickets.values() if t.title in body}


@pytest.mark.parametrize("query, expected", [
    ("author=DEVELOPER", {"login"}),  # user names in any case, on the page and in the API
    ("q=abc1234", {"login"}),  # a commit matches by its start, not anywhere inside
    ("q=SEARCH", {"search"}),
    ("status=approved", {"search"}),
])
def test_the_ticket_list_page_and_the_api_filter_alike(client, world, tickets, query, expected):
    admin = world.users["admin"]
    want = {tickets[name].pk for name in expected}
    assert _api_ids(admin, query) & {t.pk for t in tickets.values()} == want
    assert _page_ids(client, admin, query, tickets) == want


def test_the_api_refuses_a_filter_it_does_not_know_and_filters_by_kind(world, tickets):
    client = APIClient()
    client.force_authenticate(world.users["admin"])
    assert client.get("/api/tickets/?colour=red").status_code == 400
    assert client.get("/api/tickets/?kind=sideways").status_code == 400
    assert not _api_ids(world.users["admin"], "kind=rollback") & {t.pk for t in tickets.values()}


def test_host_chips_cost_the_same_queries_for_three_hosts_or_thirty(world, tickets):
    ticket = tickets["login"]
    run = DeployRun.objects.create(ticket=ticket, number=1, status=DeployRun.Status.RUNNING)
    hosts = list(ticket.hosts.all())
    for seq, host in enumerate(hosts, start=1):
        LogLine.objects.create(run=run, seq=seq, host=host.endpoint, stage="transfer", stream="stdout", text="x")
    with CaptureQueriesContext(connection) as few:
        chips = queries.host_chips(ticket, run)
    assert [c.text for c in chips] == ["transfer"] * len(hosts)
    ticket.hosts.add(*[helpers.make_host(f"10.9.0.{n}") for n in range(30)])
    with CaptureQueriesContext(connection) as many:
        chips = queries.host_chips(ticket, run)
    assert len(many.captured_queries) == len(few.captured_queries)
    assert {c.state for c in chips} <= {"running", "waiting"}
