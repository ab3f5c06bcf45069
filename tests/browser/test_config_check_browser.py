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


def test_a_failing_check_reads_in_chinese_with_its_values_and_fix(site, live_server, browser):  # noqa: F811
    """The engine's texts (marked with N_) are translated where the page shows
    them, with the host's real values filled in."""
    site.project.webroot = "/data/missing/website"  # the parent exists on no target
    site.project.save()
    page = log_in(browser, live_server.url, "maintainer", locale="zh-CN")
    page.goto(f"{live_server.url}/admin/projects/project/{site.project.pk}/change/")
    page.click("text=运行配置检测")
    expect(page.locator("#check-summary")).to_have_text("部分检测未通过")
    failed = page.locator("#check-results tr.check-fail")
    expect(failed).to_have_count(len(site.host_records))
    for row in failed.all():
        expect(row).to_contain_text("webroot 父目录")
        expect(row).to_contain_text("/data/missing 不存在")
        expect(row).to_contain_text("请创建：mkdir -p /data/missing && chown")
    expect(page.locator("#check-results")).not_to_contain_text("does not exist")
