"""Two approvals in production, in a real browser: the first Maintainer's
approval leaves the ticket waiting ("1 of 2") and his Approve button disabled
with the reason; the second Maintainer's approval approves it and Deploy appears."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from accounts.models import Role
from releases.models import Ticket
from tests import helpers
from tests.browser.test_story_browser import browser, log_in  # noqa: F401 - the browser fixture

pytestmark = [pytest.mark.browser]


def test_two_maintainers_approve_and_the_first_cannot_approve_twice(transactional_db, world, live_server,
                                                                    browser):  # noqa: F811
    env = world.project.environment
    env.approvals_required = 2
    env.save()
    helpers.add_member(helpers.make_user("maintainer2"), world.team, Role.MAINTAINER)
    ticket = helpers.make_ticket(world.project, world.users["developer"], Ticket.Status.PENDING)
    url = f"{live_server.url}/tickets/{ticket.pk}/"

    first = log_in(browser, live_server.url, "maintainer")
    first.goto(url)
    expect(first.locator("#approvals")).to_have_text("Approvals: 0 of 2")
    first.click("#btn-approve")
    expect(first.locator("#approvals")).to_contain_text("Approvals: 1 of 2 — approved by maintainer (")
    expect(first.locator("#ticket-status .chip")).to_have_attribute("data-status", Ticket.Status.PENDING)
    expect(first.locator("#waiting-for")).to_have_text(
        "Waiting for 1 more approval by a Maintainer or Owner of web other than its submitter and those who "
        "approved.")
    expect(first.locator("#btn-approve")).to_have_count(0)
    expect(first.locator("#btn-approve-blocked")).to_be_disabled()
    expect(first.locator("#why-approve")).to_have_text(
        "Approve: You have already approved this ticket; it needs another approver.")

    second = log_in(browser, live_server.url, "maintainer2")
    second.goto(url)
    expect(second.locator("#approvals")).to_contain_text("Approvals: 1 of 2")
    second.click("#btn-approve")
    expect(second.locator("#ticket-status .chip")).to_have_attribute("data-status", Ticket.Status.APPROVED)
    expect(second.locator("#approvals")).to_contain_text("Approvals: 2 of 2 — approved by maintainer (")
    expect(second.locator("#approvals")).to_contain_text("maintainer2 (")
    expect(second.locator("#waiting-for")).to_have_count(0)
    expect(second.locator("#btn-deploy")).to_be_enabled()
