"""The whole story in a real browser: a Developer opens a ticket, a Maintainer
approves it, the Developer deploys and watches the live console, the real
worker deploys to three real hosts; then v2, then a rollback to v1."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from playwright.sync_api import Browser, Page, expect, sync_playwright

from releases import fetching
from releases.models import Ticket
from tests.deploy_fixtures import V1_TEXT, V2_TEXT, wait_for
from tests.helpers import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.sshd, pytest.mark.worker]

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
ARTIFACTS = Path(settings.BASE_DIR) / "test-artifacts"
DEPLOY_TIMEOUT_MS = 120_000


@pytest.fixture
def browser(monkeypatch) -> Iterator[Browser]:
    # Playwright's sync API keeps an event loop in this thread; the test's own
    # ORM reads are plain synchronous code, so Django's guard would misfire.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def log_in(browser: Browser, base: str, username: str, locale: str | None = None, at: str = "/") -> Page:
    """A separate browser context per person, so sessions never mix. ``locale``
    is the browser's language (navigator.language and Accept-Language), as a
    person's own browser would send it; None keeps Chromium's default. ``at``
    is the page the person opens (e.g. "/admin/"); its login form brings them
    back there."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale=locale)
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(f"{base}/login/" if at == "/" else f"{base}{at}")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{base}{at}")
    return page


def open_ticket(page: Page, base: str, site, label: str, shot: str = "", choose_project: bool = False) -> int:
    """``choose_project``: start from an empty /tickets/new/ and pick the project
    in its list, as the tour says, rather than from a link naming it."""
    sha = site.commits[label]
    if choose_project:
        page.goto(f"{base}/tickets/new/")
        page.select_option("#id_choose_project", label=str(site.project))  # submits the chooser
        page.wait_for_selector("#id_choose_ref")
    else:
        page.goto(f"{base}/tickets/new/?project={site.project.pk}")
    page.select_option("#id_choose_ref", "master")  # submits the chooser
    page.wait_for_selector("#commits")
    page.click("button[name=refresh]")  # fetch what was pushed since the mirror was made
    page.wait_for_selector(f'#commits :text("{sha[:7]}")')
    link = page.locator(f'a[data-commit="{sha}"]')
    if link.count():
        link.click()
    expect(page.locator("#submit-ticket input[name=commit]")).to_have_value(sha)
    expect(page.locator("#preview")).to_be_visible()
    page.fill("#id_title", f"ship {label}")
    if shot:
        page.screenshot(path=str(ARTIFACTS / shot), full_page=True)
    page.click("#submit-ticket input[type=submit]")
    page.wait_for_url(re.compile(r".*/tickets/\d+/$"))
    return int(page.url.rstrip("/").rsplit("/", 1)[1])


def approve(page: Page, base: str, ticket_id: int) -> None:
    page.goto(f"{base}/tickets/{ticket_id}/")
    page.click("#btn-approve")
    expect(page.locator("#ticket-status .chip")).to_have_attribute("data-status", Ticket.Status.APPROVED)


def deploy_and_watch(page: Page, base: str, ticket_id: int) -> None:
    page.goto(f"{base}/tickets/{ticket_id}/")
    page.click("#btn-deploy")
    watch(page)


def watch(page: Page, succeeded: str = "succeeded") -> None:
    """``succeeded`` is the status label the person reads, in the page's language."""
    # The console streams lines while it runs...
    page.wait_for_selector("#log .l", timeout=DEPLOY_TIMEOUT_MS)
    # ...and the status chip reaches "succeeded" without anyone reloading.
    expect(page.locator("#ticket-status .chip")).to_have_attribute(
        "data-status", Ticket.Status.SUCCEEDED, timeout=DEPLOY_TIMEOUT_MS)
    expect(page.locator("#ticket-status .chip")).to_have_text(re.compile(re.escape(succeeded), re.I))
    expect(page.locator("#hostchips .chip[data-state=done]")).to_have_count(3)


def test_ticket_approve_deploy_and_rollback_in_the_browser(site, qcluster, live_server, browser, monkeypatch):
    # The worker fetches; each "Refresh" here must queue a fetch, however soon after the last one.
    monkeypatch.setattr(fetching, "REFRESH_INTERVAL", timedelta(0))
    base = live_server.url
    dev = log_in(browser, base, "developer")
    boss = log_in(browser, base, "maintainer")

    first = open_ticket(dev, base, site, "v1", shot="new-ticket.png")
    approve(boss, base, first)
    deploy_and_watch(dev, base, first)
    dev.screenshot(path=str(ARTIFACTS / "ticket-detail.png"), full_page=True)
    assert all(V1_TEXT in page for page in site.pages())

    site.push("v2", V2_TEXT)
    second = open_ticket(dev, base, site, "v2", shot="new-ticket-v2-preview.png")
    approve(boss, base, second)
    deploy_and_watch(dev, base, second)
    assert all(V2_TEXT in page for page in site.pages())

    # The Maintainer rolls the v2 ticket back: production rollbacks need no
    # approval, so one confirmation runs it.
    boss.goto(f"{base}/tickets/{second}/")
    boss.once("dialog", lambda dialog: dialog.accept())
    boss.click("#btn-rollback")
    boss.wait_for_url(re.compile(rf".*/tickets/(?!{second}/)\d+/$"))
    rollback = int(boss.url.rstrip("/").rsplit("/", 1)[1])
    assert Ticket.objects.get(pk=rollback).rollback_of_id == second
    expect(boss.locator("h1")).to_contain_text(f"back to {site.project.releases.filter(commit=site.commits['v1']).first().name}")
    watch(boss)
    wait_for(lambda: all(V1_TEXT in page for page in site.pages()), timeout=30)

    dev.goto(f"{base}/")
    expect(dev.locator("#live")).to_contain_text(site.commits["v1"][:8])
    dev.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
    phone = browser.new_context(viewport={"width": 390, "height": 844}, storage_state=dev.context.storage_state())
    mobile = phone.new_page()
    mobile.goto(f"{base}/tickets/{first}/")
    mobile.screenshot(path=str(ARTIFACTS / "ticket-detail-phone.png"), full_page=True)
