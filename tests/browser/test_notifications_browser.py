"""Notifications pressed in real Chromium: a Maintainer adds a DingTalk robot
channel, presses "Send test message" and reads the outcome (a real receiver
on 127.0.0.1 checks the signature); a wrong secret shows the robot's refusal;
a rejected ticket shows its notification on the ticket page."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from notifications.models import Channel, Delivery, Kind
from tests import helpers
from tests.browser.test_story_browser import ARTIFACTS, browser, log_in  # noqa: F401 - the browser fixture
from tests.notify_receiver import KEY, SECRET, receiver  # noqa: F401 - the receiver fixture
from tests.test_notifications_delivery import make_channel

pytestmark = [pytest.mark.browser]


def test_a_maintainer_adds_a_robot_and_sends_a_test_message(transactional_db, world, live_server, browser,  # noqa: F811
                                                            receiver):  # noqa: F811
    page = log_in(browser, live_server.url, "maintainer")
    page.goto(f"{live_server.url}/admin/notifications/channel/add/")
    page.fill("#id_name", "release robot")
    page.select_option("#id_kind", Kind.DINGTALK)
    page.select_option("#id_project", str(world.project.pk))
    page.fill("#id_url", receiver.url("dingtalk"))
    page.fill("#id_secret", SECRET)
    page.click("input[name=_continue]")
    expect(page.locator(".messagelist")).to_contain_text("release robot")

    page.click("#btn-send-test")
    expect(page.locator(".messagelist")).to_contain_text("Test message sent to release robot (HTTP 200).")
    expect(page.locator("#deliveries-group")).to_contain_text("Sent")
    page.screenshot(path=str(ARTIFACTS / "notification-channel.png"), full_page=True)
    assert receiver.received[0].verified and "release robot" in receiver.received[0].json["markdown"]["text"]
    html = page.content()
    assert KEY not in html and SECRET not in html
    assert page.input_value("#id_url") == "" and page.input_value("#id_secret") == ""

    # Replace the secret with a wrong one: the robot refuses the signature, and the page says so.
    page.fill("#id_secret", "SEC-typo")
    page.click("input[name=_continue]")
    page.click("#btn-send-test")
    expect(page.locator(".messagelist .error")).to_contain_text(re.compile(r"failed: refused by the robot: code 310000"))
    assert Channel.objects.get().decrypted_secret() == "SEC-typo"
    assert list(Delivery.objects.order_by("pk").values_list("status", flat=True)) == ["sent", "failed"]


def test_a_rejected_ticket_shows_its_notification_on_the_ticket_page(transactional_db, world, live_server,  # noqa: F811
                                                                     browser, receiver, inline_worker):  # noqa: F811
    make_channel(Kind.WEBHOOK, receiver, project=world.project)
    ticket = helpers.make_ticket(world.project, world.users["developer"], title="risky change")
    boss = log_in(browser, live_server.url, "owner")
    boss.goto(f"{live_server.url}/tickets/{ticket.pk}/")
    boss.fill("textarea[name=reason]", "no tests for the new endpoint")
    boss.click("#btn-reject")
    author = log_in(browser, live_server.url, "developer")
    author.goto(f"{live_server.url}/tickets/{ticket.pk}/")
    rows = author.locator("#notifications tbody tr")
    expect(rows).to_have_count(2)  # the submission (by make_ticket's event) and the rejection
    expect(rows.nth(1)).to_contain_text("Ticket rejected")
    expect(rows.nth(1)).to_contain_text("webhook channel")
    expect(rows.nth(1)).to_contain_text("Sent")
    author.screenshot(path=str(ARTIFACTS / "ticket-notifications.png"), full_page=True)
    assert receiver.received[1].json["note"] == "no tests for the new endpoint"
