"""What a page or an API read costs in queries does not grow with the rows it
shows: 5 or 50 tickets (each in its own project, so the project choices and
labels grow too), 10 or 500 console lines. The host chips' count is checked in
test_read_queries.py."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.test import APIClient

from releases.models import DeployRun, LogLine, Release, Ticket
from releases.views import DASHBOARD_ROWS

from . import helpers

S = Ticket.Status


def queries_of(request: Callable[[], object]) -> int:
    """The number of queries one call makes, after a first call warmed caches
    (content types, sessions) that only the first request fills."""
    request()
    with CaptureQueriesContext(connection) as captured:
        response = request()
    assert response.status_code == 200
    return len(captured.captured_queries)


def add_projects_with_tickets(world, count: int) -> None:
    """``count`` projects of the team, each with one ticket waiting for
    approval, one deploying, and one commit live on its host."""
    dev = world.users["developer"]
    for _ in range(count):
        project = helpers.make_project(world.team)
        helpers.make_ticket(project, dev, S.PENDING, title="waiting")
        helpers.make_ticket(project, dev, S.DEPLOYING, title="deploying")
        done = helpers.make_ticket(project, dev, S.SUCCEEDED, title="live")
        run = DeployRun.objects.create(ticket=done, number=1, status=DeployRun.Status.SUCCEEDED, triggered_by=dev)
        Release.objects.create(project=project, host=project.hosts.get(), name=f"r{done.pk}", commit=done.commit,
                               ticket=done, run=run, is_live=True)


@pytest.fixture
def maintainer_client(client, world):
    client.force_login(world.users["maintainer"])
    return client


@pytest.mark.parametrize("url", ["dashboard", "ticket_list"])
def test_the_dashboard_and_ticket_list_cost_the_same_queries_for_5_tickets_or_50(maintainer_client, world, url):
    add_projects_with_tickets(world, 5)
    few = queries_of(lambda: maintainer_client.get(reverse(url)))
    add_projects_with_tickets(world, 45)
    many = queries_of(lambda: maintainer_client.get(reverse(url)))
    assert many == few


def test_the_api_ticket_list_costs_the_same_queries_for_5_tickets_or_50(world):
    api = APIClient()
    api.force_authenticate(world.users["maintainer"])
    add_projects_with_tickets(world, 2)  # 6 tickets
    few = queries_of(lambda: api.get("/api/tickets/"))
    add_projects_with_tickets(world, 15)  # 51: a full page of 50
    response = api.get("/api/tickets/")
    assert len(response.json()["results"]) == 50
    assert queries_of(lambda: api.get("/api/tickets/")) == few


def test_the_dashboard_lists_the_newest_waiting_tickets_and_counts_the_rest(maintainer_client, world):
    dev = world.users["developer"]
    tickets = [helpers.make_ticket(world.project, dev, S.PENDING, title=f"wait {n:03d}")
               for n in range(DASHBOARD_ROWS + 3)]
    helpers.make_ticket(world.project, world.users["maintainer"], S.PENDING, title="my own")
    body = maintainer_client.get(reverse("dashboard")).content.decode()
    assert tickets[-1].title in body and tickets[3].title in body
    assert tickets[2].title not in body  # the oldest three are counted, not listed
    assert "3 more tickets wait for approval." in body
    assert "my own" not in body  # separation of duties in production, as before


def ticket_with_log(world, lines: int) -> Ticket:
    ticket = helpers.make_ticket(world.project, world.users["developer"], S.SUCCEEDED)
    run = DeployRun.objects.create(ticket=ticket, number=1, status=DeployRun.Status.SUCCEEDED)
    LogLine.objects.bulk_create(
        LogLine(run=run, seq=n, host="127.0.0.11" if n % 2 else "", stage="transfer", stream="stdout", text=f"<line {n}>")
        for n in range(1, lines + 1)
    )
    return ticket


def test_a_ticket_page_costs_the_same_queries_with_10_log_lines_or_500(maintainer_client, world):
    short, long = ticket_with_log(world, 10), ticket_with_log(world, 500)
    few = queries_of(lambda: maintainer_client.get(reverse("ticket_detail", args=[short.pk])))
    page = maintainer_client.get(reverse("ticket_detail", args=[long.pk])).content.decode()
    assert page.count('class="l stdout"') == 500 and "&lt;line 500&gt;" in page  # shown, and escaped
    assert queries_of(lambda: maintainer_client.get(reverse("ticket_detail", args=[long.pk]))) == few


@pytest.mark.parametrize("query", ["after=0", "before=600"])
def test_the_log_endpoints_cost_the_same_queries_for_10_lines_or_500(maintainer_client, world, query):
    short, long = ticket_with_log(world, 10), ticket_with_log(world, 500)
    api = APIClient()
    api.force_authenticate(world.users["maintainer"])
    urls = {ticket: (f"/api/tickets/{ticket.pk}/log/?{query}", reverse("ticket_log", args=[ticket.pk]) + f"?{query}")
            for ticket in (short, long)}
    for side, reader in enumerate((api, maintainer_client)):
        assert len(reader.get(urls[long][side]).json()["lines"]) == 500
        assert queries_of(lambda: reader.get(urls[long][side])) == queries_of(lambda: reader.get(urls[short][side]))  # noqa: B023 - called at once


def test_a_token_used_again_within_a_minute_is_not_rewritten(world):
    from datetime import timedelta

    from accounts.models import ApiToken

    token, raw = ApiToken.issue(world.users["developer"], "poller")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert api.get("/api/tickets/").status_code == 200
    first = ApiToken.objects.get(pk=token.pk).last_used_at
    assert api.get("/api/tickets/").status_code == 200
    assert ApiToken.objects.get(pk=token.pk).last_used_at == first  # not rewritten, so no row lock to wait for
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=first - timedelta(minutes=2))
    assert api.get("/api/tickets/").status_code == 200
    assert ApiToken.objects.get(pk=token.pk).last_used_at > first


@pytest.mark.parametrize("zone", ["UTC", "Asia/Shanghai"])
def test_api_log_lines_read_as_one_serializer_per_line_would_give_them(world, zone):
    import zoneinfo

    from django.utils import timezone

    from releases.serializers import LogLineSerializer

    ticket = ticket_with_log(world, 3)
    api = APIClient()
    api.force_authenticate(world.users["maintainer"])
    with timezone.override(zoneinfo.ZoneInfo(zone)):
        served = api.get(f"/api/tickets/{ticket.pk}/log/").json()["lines"]
        one_by_one = [LogLineSerializer(line).data for line in LogLine.objects.filter(run__ticket=ticket)]
    assert served == one_by_one
    assert served[0]["time"].endswith("Z" if zone == "UTC" else "+08:00")
