"""A Maintainer sets up a project's webhook in the admin: sees its URL and
secret once, never again after that page, and a regenerated secret replaces
the old one at the endpoint."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.test_story_browser import browser, log_in  # noqa: F401 - the browser fixture
from tests.test_webhooks_receive import deliver, push_payload
from webhooks.models import ProjectWebhook, WebhookDelivery

pytestmark = [pytest.mark.browser]


def test_a_maintainer_enables_a_webhook_and_sees_its_secret_only_once(transactional_db, world, live_server,
                                                                       browser):  # noqa: F811
    page = log_in(browser, live_server.url, "maintainer")
    page.goto(f"{live_server.url}/admin/")
    page.click("a[href='/admin/webhooks/projectwebhook/add/']")
    page.select_option("#id_project", label=str(world.project))
    page.fill("#id_branch", "master")
    page.click("input[name=_save]")

    expect(page.locator("#webhook-secret-once")).to_contain_text("Secret")
    secret = page.locator("#webhook-secret").inner_text().strip()
    url = page.locator("#webhook-url").inner_text().strip()
    webhook = ProjectWebhook.objects.get(project=world.project)
    assert url == live_server.url + webhook.path() and len(secret) >= 40
    assert webhook.acts_as == world.users["maintainer"]
    # What was shown works: a delivery signed with it is accepted (and ignored: another branch).
    payload = push_payload("github", "refs/heads/feature", "2" * 40)
    assert deliver(live_server.url, webhook, "github", payload, secret)[0] == 200

    page.click("#webhook-done")
    expect(page.locator("#webhook-url")).to_have_text(url)
    assert secret not in page.content()
    page.reload()
    expect(page.locator("#webhook-url")).to_have_text(url)
    assert secret not in page.content()

    page.click("#regenerate-secret")
    new_secret = page.locator("#webhook-secret").inner_text().strip()
    assert new_secret and new_secret != secret
    assert deliver(live_server.url, webhook, "github", {**payload, "after": "3" * 40}, secret)[0] == 403
    assert deliver(live_server.url, webhook, "github", {**payload, "after": "4" * 40}, new_secret)[0] == 200
    page.click("#webhook-done")
    page.click("#webhook-deliveries")
    expect(page.locator("#result_list tbody tr")).to_have_count(2)
    assert WebhookDelivery.objects.filter(project=world.project).count() == 2
