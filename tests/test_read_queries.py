"""The pages and the API read with one set of rules (releases.queries): a
ticket filter, a log page and a host's state mean the same in both."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.test import APIClient

from accounts import grants
from accounts.permissions import visible
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


@pytest.fixture
def spread(world):
    """Tickets interleaved over four projects: the team's two, the other
    team's, and one of the other team's granted to the "granted" user."""
    granted = helpers.make_project(world.other_team, name="shop", slug="shop")
    grants.grant(world.users["admin"], world.users["granted"], "view", granted)
    projects = [world.project, helpers.make_project(world.team), world.other_project, granted]
    return [helpers.make_ticket(projects[n % 4], world.users["developer"], title=f"spread {n:02d}") for n in range(12)]


@pytest.mark.parametrize("persona", ["guest", "maintainer", "outsider", "granted", "admin"])
def test_ticket_lists_show_what_the_user_may_see_newest_first(client, world, spread, persona):
    user = world.users[persona]
    want = list(visible(user, Ticket.objects.order_by("-created_at", "-id")).values_list("pk", flat=True))
    assert len(want) == 12 if persona == "admin" else 0 < len(want) < 12  # some, not all
    api = APIClient()
    api.force_authenticate(user)
    assert [t["id"] for t in api.get("/api/tickets/").json()["results"]] == want
    client.force_login(user)
    body = client.get(reverse("ticket_list")).content.decode()
    assert [int(pk) for pk in re.findall(r'data-ticket="(\d+)"', body)] == want
    other = world.other_project.pk  # a project filter: only that project's, if the user may see it
    assert [t["id"] for t in api.get(f"/api/tickets/?project={other}").json()["results"]] == [
        pk for pk in want if Ticket.objects.get(pk=pk).project_id == other]


def _plan_of_the_list_query(request) -> list[str]:
    """SQLite's EXPLAIN QUERY PLAN of the query that reads a list's page of tickets."""
    with CaptureQueriesContext(connection) as captured:
        assert request().status_code == 200
    [sql] = [q["sql"] for q in captured.captured_queries
             if q["sql"].startswith('SELECT "releases_ticket"."id"') and " LIMIT " in q["sql"]]
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN QUERY PLAN {sql}")
        return [row[-1] for row in cursor.fetchall()]


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's planner; PostgreSQL walks the index anyway")
@pytest.mark.parametrize("url", ["/tickets/", "/api/tickets/"])
def test_a_maintainers_ticket_list_walks_the_created_index_instead_of_sorting(client, world, spread, url):
    """The regression this guards against: SQLite served "project in the
    visible projects" from the project index, then sorted every visible
    ticket for one page (70 ms at 100,000 tickets; with the ticket_created
    index walked in order it stops after a page)."""
    client.force_login(world.users["maintainer"])
    plan = _plan_of_the_list_query(lambda: client.get(url))
    assert "SCAN releases_ticket USING INDEX ticket_created" in plan, plan
    assert not [step for step in plan if "TEMP B-TREE" in step and "ORDER BY" in step], plan
    # With a project filter, that project's rows come from a project index.
    plan = _plan_of_the_list_query(lambda: client.get(url, {"project": world.project.pk}))
    assert [step for step in plan if step.startswith("SEARCH releases_ticket USING") and "(project_id=?" in step], plan


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's planner; PostgreSQL walks the index anyway")
@pytest.mark.parametrize("url", ["/tickets/", "/api/tickets/"])
def test_a_user_who_sees_few_projects_reads_the_list_from_the_project_index(client, world, spread, url):
    """Walking every ticket newest first to find one project's few would cost
    as many rows as the whole table: a user who sees under a quarter of the
    projects (the granted user: 1 of 8) is served from the project index."""
    for n in range(4):
        helpers.make_project(world.other_team, name=f"more {n}", slug=f"more-{n}")
    client.force_login(world.users["granted"])
    plan = _plan_of_the_list_query(lambda: client.get(url))
    assert [step for step in plan if step.startswith("SEARCH releases_ticket USING") and "(project_id=?" in step], plan
    assert "SCAN releases_ticket USING INDEX ticket_created" not in plan, plan


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
