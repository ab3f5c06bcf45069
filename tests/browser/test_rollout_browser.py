"""A canary production deploy as a person sees it: the canary switches and
passes its check, the ticket shows it waits for a promote; the person presses
Promote and the other hosts follow, or presses Cancel and the canary is
switched back."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from projects.models import RolloutStrategy
from releases.models import DeployRun, Ticket
from tests.browser.test_story_browser import DEPLOY_TIMEOUT_MS, browser, log_in  # noqa: F401 - the browser fixture
from tests.deploy_fixtures import V1_TEXT, V2_TEXT, deploy_now, open_approved_ticket

pytestmark = [pytest.mark.browser, pytest.mark.sshd, pytest.mark.worker]


def canary_waiting(site, live_server, browser) -> Page:  # noqa: F811
    """v1 everywhere, then the developer deploys v2 as a canary that waits for a promote."""
    first = deploy_now(site.users["developer"], open_approved_ticket(site, "v1"))
    assert first.status == DeployRun.Status.SUCCEEDED, first.error
    ports = {t.http_port for t in site.targets}
    project = site.project
    project.rollout_strategy, project.canary_hosts, project.promote_required = RolloutStrategy.CANARY, 1, True
    project.health_path, project.health_port, project.health_text = "/", ports.pop(), V2_TEXT
    project.save()
    site.push("v2", V2_TEXT)
    ticket = open_approved_ticket(site, "v2")

    page = log_in(browser, live_server.url, "developer")
    page.goto(f"{live_server.url}/tickets/{ticket.pk}/")
    expect(page.locator("#rollout")).to_contain_text("Canary of 1, then the rest")
    page.click("#btn-deploy")
    status = page.locator("#ticket-status .chip")
    expect(status).to_have_attribute("data-status", Ticket.Status.WAITING, timeout=DEPLOY_TIMEOUT_MS)
    expect(status).to_have_text("Waiting for promote")
    expect(page.locator("#waiting-promote")).to_be_visible()
    expect(page.locator("#log")).to_contain_text("waiting for a promote before batch 2/2")
    # The canary serves the new release, the others still the old one.
    assert [V2_TEXT in text for text in site.pages()] == [True, False, False]
    assert V1_TEXT in site.pages()[1]
    return page


def test_promote_lets_the_rest_of_a_canary_rollout_follow(site, qcluster, live_server, browser):  # noqa: F811
    page = canary_waiting(site, live_server, browser)
    page.click("#btn-promote")
    status = page.locator("#ticket-status .chip")
    expect(status).to_have_attribute("data-status", Ticket.Status.SUCCEEDED, timeout=DEPLOY_TIMEOUT_MS)
    expect(page.locator("#btn-promote")).to_have_count(0)
    assert all(V2_TEXT in text for text in site.pages())


def test_cancel_switches_the_canary_back_and_the_page_says_so(site, qcluster, live_server, browser):  # noqa: F811
    page = canary_waiting(site, live_server, browser)
    cancel = page.locator("#btn-cancel")
    expect(cancel).to_have_value("Cancel and switch back")
    asked = []

    def answer(dialog) -> None:
        asked.append(dialog.message)
        dialog.accept()

    page.once("dialog", answer)
    cancel.click()
    expect(page.locator("ul.messagelist")).to_contain_text(
        "Cancelling: the rollout stops and the hosts it switched go back to what they served before.")
    assert asked == ["Cancel the rollout? The hosts it switched go back to what they served before."]

    # The page follows the worker without a reload by the person: cancelled, nothing left to press.
    status = page.locator("#ticket-status .chip")
    expect(status).to_have_attribute("data-status", Ticket.Status.CANCELLED, timeout=DEPLOY_TIMEOUT_MS)
    expect(status).to_have_text("Cancelled")
    expect(page.locator("#run-status")).to_have_text("Cancelled")
    for button in ("#btn-cancel", "#btn-promote", "#btn-retry", "#btn-rollback"):
        expect(page.locator(button)).to_have_count(0)
    expect(page.locator("#cancelling-note")).to_have_count(0)
    log = page.locator("#log")
    expect(log).to_contain_text("switching back 127.0.0.11 because cancelled by developer")
    expect(log).to_contain_text("Cancelled: every host this run switched serves what it served before again.")
    expect(page.locator('#hostchips [data-host="127.0.0.11"] .chip')).to_have_attribute("data-state", "reverted")
    timeline = page.locator("#timeline tbody")
    expect(timeline.locator("tr").nth(-2)).to_contain_text("cancelled")
    expect(timeline.locator("tr").nth(-2)).to_contain_text("Waiting for promote → Cancelling")
    expect(timeline.locator("tr").last).to_contain_text("hosts switched back")
    expect(timeline.locator("tr").last).to_contain_text("Cancelling → Cancelled")
    assert all(V1_TEXT in text for text in site.pages())
