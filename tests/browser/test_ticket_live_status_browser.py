"""The ticket page while a run moves: the status badge and the "Latest run"
line change together, without a reload."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from projects.models import Host
from releases import workflow
from releases.models import Ticket
from tests import helpers
from tests.browser.test_story_browser import browser, log_in  # noqa: F401 - the browser fixture

pytestmark = [pytest.mark.browser]


def test_a_run_the_worker_starts_shows_running_beside_deploying(transactional_db, world, live_server,
                                                                browser):  # noqa: F811
    world.project.hosts.add(Host.objects.create(address="127.0.0.99"))
    ticket = helpers.make_ticket(world.project, world.users["developer"], status=Ticket.Status.APPROVED)
    run = workflow.deploy(world.users["owner"], ticket)  # no worker here: it stays queued
    page = log_in(browser, live_server.url, "developer")
    page.goto(f"{live_server.url}/tickets/{ticket.pk}/")
    expect(page.locator("#run-status")).to_have_text("Queued")
    workflow.start_run(run.pk, "worker-a")  # what the worker does when it takes the run
    expect(page.locator("#ticket-status .chip")).to_have_text("Deploying")
    expect(page.locator("#run-status")).to_have_text("Running")
