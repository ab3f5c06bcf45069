"""The README tour's "Run config check" button, pressed in a real browser on
a project whose hosts are real sshd targets."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.test_story_browser import browser, log_in  # noqa: F401 - the browser fixture

pytestmark = [pytest.mark.browser, pytest.mark.sshd]


def test_run_config_check_on_the_project_page_shows_every_hosts_results(site, live_server, browser):  # noqa: F811
    page = log_in(browser, live_server.url, "maintainer")
    page.goto(f"{live_server.url}/admin/projects/project/{site.project.pk}/change/")
    page.click("text=Run config check")
    expect(page.locator("#check-summary")).to_have_text("All checks passed")
    results = page.locator("#check-results")
    for host in site.host_records:
        expect(results).to_contain_text(host.address)
    expect(results).to_contain_text("deploy host")
    expect(results.locator("tr.check-fail")).to_have_count(0)
