"""A Maintainer changes a project's hosts and sets a secret in the admin, then
reads both on the audit page, filtered to that project: the host list before
and after, the secret as "changed" and never its value."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests import helpers
from tests.browser.test_story_browser import browser, log_in  # noqa: F401 - the browser fixture

pytestmark = [pytest.mark.browser]

VALUE = "sk_live_9f8e7d6c5b4a3210"


def test_a_maintainer_reads_his_host_and_secret_changes_on_the_audit_page(transactional_db, world, live_server,
                                                                          browser):  # noqa: F811
    old_host = world.project.hosts.get()
    # A host of another project of his group, which he may link to this one.
    helpers.make_project(world.team, name="shop", slug="shop", webroot="/data/nginx/shop",
                         hosts=[helpers.make_host("10.5.5.5")])
    page = log_in(browser, live_server.url, "maintainer")

    page.goto(f"{live_server.url}/admin/projects/project/{world.project.pk}/change/")
    page.select_option("#id_hosts_from", label="10.5.5.5")
    page.click("#id_hosts_add")
    page.click("input[name=_save]")
    expect(page.locator(".messagelist")).to_contain_text("was changed successfully")

    page.goto(f"{live_server.url}/admin/projects/project/{world.project.pk}/secrets/")
    page.fill("#id_name", "STRIPE_KEY")
    page.fill("#id_value", VALUE)
    page.click("#secret-form button[type=submit]")
    expect(page.locator("#secrets")).to_contain_text("STRIPE_KEY")

    page.click("text=View site")
    page.click("nav.walle-nav >> text=Audit log")
    page.select_option("#id_project", label=str(world.project))
    page.click("#audit-filters input[type=submit]")
    table = page.locator("#audit-entries")
    hosts = table.locator("tr", has_text="10.5.5.5").first
    expect(hosts).to_contain_text("maintainer")
    expect(hosts.locator(".before")).to_have_text(old_host.name)
    expect(hosts.locator(".after")).to_have_text(f"{old_host.name}, 10.5.5.5")
    secret = table.locator("tr", has_text="STRIPE_KEY").first
    expect(secret).to_contain_text("value_encrypted: changed")
    expect(table).not_to_contain_text("shop")  # the filter kept to this project
    assert VALUE not in page.content()
