"""Deploy windows in a real browser: a platform admin gives production a
window in the admin; a Developer then finds Deploy disabled with the reason
on the ticket page, schedules the ticket into the next window and
unschedules it."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone
from django.utils.dates import WEEKDAYS_ABBR
from playwright.sync_api import expect

from projects.models import DeployWindow
from releases.models import Ticket
from tests import helpers
from tests.browser.test_story_browser import ARTIFACTS, browser, log_in  # noqa: F401 - the browser fixture

pytestmark = [pytest.mark.browser]

ZONE = "Asia/Shanghai"


def test_a_window_set_in_the_admin_closes_deploys_and_a_ticket_is_scheduled_into_it(
        transactional_db, world, live_server, browser):  # noqa: F811
    ticket = helpers.make_ticket(world.project, world.users["developer"], Ticket.Status.APPROVED, title="ship cart")
    env = world.project.environment
    # The weekday after tomorrow in Shanghai: closed now, whenever the test runs.
    opens = timezone.now().astimezone(ZoneInfo(ZONE)).date() + timedelta(days=2)
    day = WEEKDAYS_ABBR[opens.weekday()]

    admin = log_in(browser, live_server.url, "admin")
    admin.goto(f"{live_server.url}/admin/projects/environment/{env.pk}/change/")
    admin.fill("#id_time_zone", ZONE)
    admin.click("text=Add another Deploy window")
    admin.check(f"#id_deploy_windows-0-weekdays_{opens.weekday()}")
    admin.fill("#id_deploy_windows-0-start", "10:00")
    admin.fill("#id_deploy_windows-0-end", "17:00")
    admin.click("input[name=_save]")
    expect(admin.locator(".messagelist")).to_contain_text("was changed successfully")
    window = DeployWindow.objects.get(environment=env)
    assert window.weekdays == str(opens.weekday())

    dev = log_in(browser, live_server.url, "developer")
    dev.goto(f"{live_server.url}/tickets/{ticket.pk}/")
    expect(dev.locator("#btn-deploy")).to_be_disabled()
    expect(dev.locator("#deploy-window")).to_have_text(
        f"Production deploys are allowed {day} 10:00-17:00 {ZONE}; next window opens {day} {opens} 10:00")
    expect(dev.locator("#override-form")).to_have_count(0)  # an Owner's button, not a Developer's

    expect(dev.locator("#schedule-zone")).to_have_text(ZONE)
    dev.fill("#id_at", f"{opens}T11:00")
    dev.click("#btn-schedule")
    expect(dev.locator(".messagelist")).to_contain_text("Deploy scheduled.")
    expect(dev.locator("#schedule-state")).to_have_text(f"Scheduled for {day} {opens} 11:00 {ZONE} by developer.")
    dev.screenshot(path=str(ARTIFACTS / "deploy-window-scheduled.png"), full_page=True)

    dev.click("#btn-unschedule")
    expect(dev.locator("#schedule-state")).to_have_count(0)
    expect(dev.locator("#timeline")).to_contain_text("Unscheduled")  # the event's label
    ticket.refresh_from_db()
    assert ticket.scheduled_at is None and ticket.status == Ticket.Status.APPROVED
