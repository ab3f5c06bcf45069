"""The project form as a Maintainer meets it: the slug follows the name, hook
labels read as words, the rarely changed parts start folded away."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.test_story_browser import browser, log_in  # noqa: F401 - the browser fixture

pytestmark = [pytest.mark.browser]


def test_new_project_form_fills_the_slug_and_folds_rare_settings(transactional_db, world, live_server,
                                                                 browser):  # noqa: F811
    page = log_in(browser, live_server.url, "maintainer")
    page.goto(f"{live_server.url}/admin/projects/project/add/")
    page.fill("#id_name", "Shop API")
    page.locator("#id_name").blur()
    expect(page.locator("#id_slug")).to_have_value("shop-api")
    expect(page.locator("label[for=id_pre_deploy]")).to_have_text("Pre-deploy hook (pre_deploy):")
    expect(page.locator("#id_workspace")).to_be_hidden()  # folded: "Deploy host and keys"
    page.click("text=Deploy host and keys")
    expect(page.locator("#id_workspace")).to_be_visible()
