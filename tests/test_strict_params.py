"""Numeric query parameters accept only ASCII digits: "²" passes str.isdigit()
and then breaks int() (a 500), "١" is read by int() as 1. Both are a 400 with
a message naming the parameter, and change nothing."""

from __future__ import annotations

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from releases.forms import BadParameter, parse_count
from releases.models import DeployRun, LogLine, Ticket

from . import helpers

NOT_ASCII_NUMBERS = ["²", "١", "٣٤", "１", "1²", " 1", "1.0", "-1", "1e3", "9" * 5000]


@pytest.mark.parametrize("raw", NOT_ASCII_NUMBERS)
def test_parse_count_refuses_anything_but_ascii_digits(raw):
    with pytest.raises(BadParameter, match="after"):
        parse_count(raw, "after")


def test_parse_count_reads_plain_numbers_and_bounds_them():
    assert parse_count("0042", "after") == 42
    assert parse_count("", "after") is None and parse_count(None, "after") is None
    with pytest.raises(BadParameter, match="between"):
        parse_count("2147483648", "after")
    with pytest.raises(BadParameter, match="between"):
        parse_count("0", "limit", minimum=1)


@pytest.fixture
def ticket(world) -> Ticket:
    ticket = helpers.make_ticket(world.project, world.users["developer"], Ticket.Status.DEPLOYING)
    run = DeployRun.objects.create(ticket=ticket, number=1, status=DeployRun.Status.RUNNING)
    LogLine.objects.create(run=run, seq=1, host="", stage="checkout", stream="info", text="hello")
    return ticket


@pytest.mark.parametrize("name", ["after", "before"])
@pytest.mark.parametrize("raw", ["²", "١"])
def test_the_json_log_refuses_unicode_digits_with_400(client, world, ticket, name, raw):
    client.force_login(world.users["reporter"])
    response = client.get(reverse("ticket_log", args=[ticket.pk]), {name: raw})
    assert response.status_code == 400 and name in response.json()["error"]


@pytest.mark.parametrize("name", ["after", "before", "run", "limit"])
@pytest.mark.parametrize("raw", ["²", "١", "-1"])
def test_the_api_log_refuses_unicode_digits_with_400(world, ticket, name, raw):
    client = APIClient()
    client.force_authenticate(world.users["reporter"])
    response = client.get(f"/api/tickets/{ticket.pk}/log/", {name: raw})
    assert response.status_code == 400 and name in response.json()


@pytest.mark.parametrize("raw", ["²", "١"])
def test_the_api_ticket_filter_refuses_unicode_digits(world, ticket, raw):
    client = APIClient()
    client.force_authenticate(world.users["reporter"])
    response = client.get("/api/tickets/", {"project": raw})
    assert response.status_code == 400 and "project" in response.json()


@pytest.mark.parametrize("raw", ["²", "١"])
def test_the_new_ticket_page_refuses_a_unicode_digit_project(client, world, raw):
    client.force_login(world.users["developer"])
    assert client.get(reverse("ticket_new"), {"project": raw}).status_code == 400
    response = client.post(reverse("ticket_new"), {"project": raw, "ref": "master", "title": "t"})
    assert response.status_code == 400 and not Ticket.objects.filter(title="t").exists()
    assert client.post(reverse("ticket_new_refresh"), {"project": raw}).status_code == 400
    assert client.get(reverse("ticket_new_fetch_status"), {"project": raw}).status_code == 400


@pytest.mark.parametrize("raw", ["²", "١", "0", "x"])
def test_the_ticket_list_refuses_a_page_that_is_not_a_plain_number(client, world, raw):
    client.force_login(world.users["developer"])
    assert client.get(reverse("ticket_list"), {"page": raw}).status_code == 400
    assert client.get(reverse("ticket_list"), {"page": "1"}).status_code == 200
