"""Opening a ticket as a person does: choosing updates the page by itself
(no "Show" to press) and the title defaults to what is deployed."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from playwright.sync_api import expect
from rest_framework.test import APIClient

from releases import fetching
from releases.models import Ticket
from tests.browser.test_story_browser import browser, log_in  # noqa: F401 - the browser fixture

pytestmark = [pytest.mark.browser, pytest.mark.sshd, pytest.mark.worker]


def test_choosing_project_and_branch_needs_no_show_press_and_the_title_is_prefilled(
        site, qcluster, live_server, browser, monkeypatch):  # noqa: F811
    monkeypatch.setattr(fetching, "REFRESH_INTERVAL", timedelta(0))
    sha = site.commits["v1"]
    page = log_in(browser, live_server.url, "developer")
    page.goto(f"{live_server.url}/tickets/new/")
    expect(page.locator("#chooser input[type=submit]")).to_have_count(0)  # only inside <noscript>
    page.select_option("#id_choose_project", str(site.project.pk))
    page.select_option("#id_choose_ref", "master")
    expect(page.locator(f'#commits :text("{sha[:7]}")')).to_be_visible(timeout=60_000)
    expect(page.locator("#id_title")).to_have_value(f"master {sha[:7]}")
    page.click("#submit-ticket input[type=submit]")
    page.wait_for_url(re.compile(r".*/tickets/\d+/$"))
    expect(page.locator("h1")).to_contain_text(f"master {sha[:7]}")


def test_an_api_ticket_without_a_title_is_named_after_its_ref_and_commit(site, qcluster):
    client = APIClient()
    client.force_authenticate(site.users["developer"])
    created = client.post("/api/tickets/", {"project": site.project.pk, "ref": "master"}, format="json")
    assert created.status_code == 201, created.content
    sha = site.commits["v1"]
    assert created.json()["title"] == f"master {sha[:7]}"
    assert Ticket.objects.get(pk=created.json()["id"]).commit == sha
