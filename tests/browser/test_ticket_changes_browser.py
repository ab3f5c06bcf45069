"""The approver reads what he approves: the ticket page shows live -> chosen,
its commits and each file's content diff (binary files named only, large ones
capped), from the real repository."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from releases import repository, workflow
from tests.browser.test_story_browser import browser, log_in  # noqa: F401 - the browser fixture
from tests.deploy_fixtures import PAGE, V2_TEXT, deploy_now, open_approved_ticket

pytestmark = [pytest.mark.browser, pytest.mark.sshd, pytest.mark.worker]


def test_the_approver_sees_each_files_diff_on_the_ticket_page(site, qcluster, live_server, browser):  # noqa: F811
    deploy_now(site.users["owner"], open_approved_ticket(site, "v1"))
    big = "".join(f"line {n}\n" for n in range(600))
    sha = site.git_server.commit(site.repo, {"index.html": PAGE.format(V2_TEXT), "logo.bin": "PNG\x00\x01\x02",
                                             "big.txt": big}, "v2 with a logo")
    repository.resolve_fresh(site.project, "master", sha)  # what the new-ticket page does: fetch
    ticket = workflow.submit(site.users["developer"], site.project, title="ship v2", ref="master", commit=sha)

    page = log_in(browser, live_server.url, "maintainer")
    page.goto(f"{live_server.url}/tickets/{ticket.pk}/")
    preview = page.locator("#preview")
    expect(preview).to_contain_text("v2 with a logo")  # the commit being approved
    index = preview.locator('details.file-diff[data-path="index.html"]')
    expect(index.locator(".dl-add")).to_contain_text(V2_TEXT)
    expect(index.locator(".dl-del").first).to_be_visible()
    expect(preview.locator('details[data-path="logo.bin"]')).to_contain_text("binary file, content not shown")
    expect(preview.locator('details[data-path="big.txt"]')).to_contain_text("too large to show here")
    expect(preview.locator('details[data-path="big.txt"] pre')).to_have_count(0)
    page.click("#btn-approve")
    expect(page.locator("#ticket-status .chip")).to_have_text("Approved")
