"""Admin pages this hardening added, pressed in a real browser: a project's
secrets (set, never shown back, deleted) and the bulk approval that shows what
it approves before it approves it."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from accounts import permissions
from releases.models import Ticket
from tests import helpers
from tests.browser.test_story_browser import browser, log_in  # noqa: F401 - the browser fixture

pytestmark = [pytest.mark.browser]

VALUE = "npm_tok_4f3e2d1c0b9a8877"


def test_a_maintainer_sets_and_deletes_a_secret_that_is_never_shown_back(transactional_db, world, live_server,
                                                                          browser):  # noqa: F811
    page = log_in(browser, live_server.url, "maintainer")
    page.goto(f"{live_server.url}/admin/projects/project/{world.project.pk}/change/")
    page.click("text=Secrets")
    page.fill("#id_name", "NPM_TOKEN")
    page.fill("#id_value", VALUE)
    page.click("#secret-form button[type=submit]")
    row = page.locator("#secrets tbody tr").first
    expect(row).to_contain_text("NPM_TOKEN")
    expect(row).to_contain_text("set ")
    assert VALUE not in page.content()
    row.locator("button", has_text="Delete").click()
    expect(page.locator("#secrets")).to_contain_text("No secrets.")


def test_bulk_approval_shows_each_ticket_then_approves_what_was_shown(transactional_db, world, live_server,
                                                                      browser):  # noqa: F811
    ticket = helpers.make_ticket(world.project, world.users["developer"], title="ship the search page")
    page = log_in(browser, live_server.url, "owner")
    page.goto(f"{live_server.url}/admin/releases/ticket/")
    page.check(f"input[name=_selected_action][value='{ticket.pk}']")
    page.select_option("select[name=action]", "approve")
    page.click("button[name=index]")
    expect(page.locator("h1")).to_contain_text("Approve these tickets?")
    expect(page.locator("#approve-tickets")).to_contain_text("ship the search page")
    expect(page.locator("#approve-tickets")).to_contain_text(ticket.commit)
    ticket.refresh_from_db()
    assert ticket.status == Ticket.Status.PENDING  # nothing approved by the first press
    page.click("input[type=submit][value=Approve]")
    expect(page.locator(".messagelist")).to_contain_text("Approved 1 ticket.")
    ticket.refresh_from_db()
    assert ticket.status == Ticket.Status.APPROVED


def test_a_maintainer_rejects_a_ticket_with_a_reason_the_author_then_reads(transactional_db, world, live_server,
                                                                           browser):  # noqa: F811
    ticket = helpers.make_ticket(world.project, world.users["developer"], title="risky change")
    boss = log_in(browser, live_server.url, "owner")
    boss.goto(f"{live_server.url}/tickets/{ticket.pk}/")
    boss.fill("textarea[name=reason]", "no tests for the new endpoint")
    boss.click("#btn-reject")
    author = log_in(browser, live_server.url, "developer")
    author.goto(f"{live_server.url}/tickets/{ticket.pk}/")
    expect(author.locator("body")).to_contain_text("Rejected because")
    expect(author.locator("body")).to_contain_text("no tests for the new endpoint")
    ticket.refresh_from_db()
    assert ticket.status == Ticket.Status.REJECTED


def test_a_maintainer_grants_an_outsider_one_action_by_its_label_and_revokes_it(transactional_db, world, live_server,
                                                                               browser):  # noqa: F811
    carol = helpers.make_user("carol")  # not in the project's group
    page = log_in(browser, live_server.url, "maintainer")
    page.goto(f"{live_server.url}/admin/projects/project/{world.project.pk}/change/")
    page.click("text=Per-user grants")
    expect(page.locator("#grants")).to_contain_text("No per-user grants.")
    page.fill("#id_username", "carol")
    page.select_option("#id_action", label="view details: config, hosts, commits and logs")
    page.click("form button.default")
    expect(page.locator(".messagelist")).to_contain_text(
        "Granted view details: config, hosts, commits and logs to carol.")
    row = page.locator("#grants tbody tr", has_text="carol")
    expect(row).to_contain_text("view details: config, hosts, commits and logs")
    assert permissions.can(carol, permissions.Action.VIEW_DETAILS, world.project)
    row.locator("button", has_text="Revoke").click()
    expect(page.locator(".messagelist")).to_contain_text("Revoked view details")
    expect(page.locator("#grants")).to_contain_text("No per-user grants.")
    assert not permissions.can(carol, permissions.Action.VIEW_DETAILS, world.project)
