"""The ticket page's console in a real browser: it renders only the tail of a
long log, and "Load earlier lines" brings back the rest, in order."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from releases.models import DeployRun, LogLine, Ticket
from tests import helpers
from tests.browser.test_story_browser import browser, log_in  # noqa: F401 - the browser fixture

pytestmark = [pytest.mark.browser]


def test_load_earlier_lines_brings_back_the_whole_log_in_order(transactional_db, world, live_server, browser):  # noqa: F811
    ticket = helpers.make_ticket(world.project, world.users["developer"], Ticket.Status.FAILED)
    run = DeployRun.objects.create(ticket=ticket, number=1, status=DeployRun.Status.FAILED, stage="finish")
    LogLine.objects.bulk_create([
        LogLine(run=run, seq=seq, host="", stage="transfer", stream="stdout", text=f"line {seq}")
        for seq in range(1, 1201)
    ])
    page = log_in(browser, live_server.url, "reporter")
    page.goto(f"{live_server.url}/tickets/{ticket.pk}/")
    rows = page.locator("#log .l")
    expect(rows).to_have_count(500)
    expect(rows.first).to_contain_text("line 701")
    page.click("#log-earlier")
    expect(rows).to_have_count(1200)
    expect(rows.first).to_contain_text("line 1")
    expect(page.locator("#log-earlier")).to_be_hidden()
    seqs = page.eval_on_selector_all("#log .l", "els => els.map((e) => Number(e.dataset.seq))")
    assert seqs == list(range(1, 1201))
