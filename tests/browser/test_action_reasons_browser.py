"""A Developer meets a disabled Approve with its reason and whom his ticket
waits for; the Owner it names presses Approve and the waiting line goes."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from releases.models import Ticket
from tests import helpers
from tests.browser.test_story_browser import browser, log_in  # noqa: F401 - the browser fixture

pytestmark = [pytest.mark.browser]


def test_a_developer_sees_why_he_cannot_approve_and_the_owner_approves(transactional_db, world, live_server,
                                                                       browser):  # noqa: F811
    ticket = helpers.make_ticket(world.project, world.users["developer"], Ticket.Status.PENDING)
    dev = log_in(browser, live_server.url, "developer")
    dev.goto(f"{live_server.url}/tickets/{ticket.pk}/")
    expect(dev.locator("#btn-approve-blocked")).to_be_disabled()
    expect(dev.locator("#why-approve")).to_have_text("Approve: Only Maintainers and Owners of web approve its tickets.")
    expect(dev.locator("#waiting-for")).to_contain_text("Waiting for approval by a Maintainer or Owner of web")
    owner = log_in(browser, live_server.url, "owner")
    owner.goto(f"{live_server.url}/tickets/{ticket.pk}/")
    owner.click("#btn-approve")
    expect(owner.locator("#ticket-status .chip")).to_have_text("Approved")
    dev.reload()
    expect(dev.locator("#waiting-for")).to_have_count(0)
    expect(dev.locator("#btn-deploy")).to_be_enabled()  # his own approved ticket: he deploys it
