"""Deploy windows and freezes in the workflow, on the ticket page and in the API:
a deploy outside is refused naming the next window, a rollback always runs,
and only an Owner overrides, with a reason that is recorded."""

from __future__ import annotations

import re
from datetime import time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse
from django.utils import timezone
from django.utils.dates import WEEKDAYS_ABBR
from rest_framework.test import APIClient

from projects.forms import DeployWindowForm
from projects.models import DeployFreeze, DeployWindow, Environment
from releases import workflow
from releases.models import Ticket, TicketAction, TicketEvent

from . import helpers

S = Ticket.Status
ZONE = "Asia/Shanghai"


def local_today() -> object:
    return timezone.now().astimezone(ZoneInfo(ZONE)).date()


def close_now(env: Environment) -> str:
    """Open ``env`` only on the weekday after tomorrow, 10:00-17:00 Shanghai
    time; returns the message a deploy now must get."""
    env.time_zone = ZONE
    env.save()
    opens = local_today() + timedelta(days=2)
    DeployWindow.objects.create(environment=env, weekdays=str(opens.weekday()), start=time(10), end=time(17))
    day = WEEKDAYS_ABBR[opens.weekday()]
    return (f"Production deploys are allowed {day} 10:00-17:00 {ZONE}; "
            f"next window opens {day} {opens.isoformat()} 10:00")


def open_now(env: Environment) -> None:
    """Windows around the clock (two halves of every day): open, but restricted."""
    env.time_zone = ZONE
    env.save()
    for start, end in ((time(0), time(12)), (time(12), time(0))):
        DeployWindow.objects.create(environment=env, weekdays="0123456", start=start, end=end)


def freeze_today(env: Environment, reason: str = "Spring Festival") -> DeployFreeze:
    env.time_zone = ZONE
    env.save()
    today = local_today()
    return DeployFreeze.objects.create(environment=env, start=today, end=today + timedelta(days=1), reason=reason)


@pytest.fixture
def approved(world) -> Ticket:
    return helpers.make_ticket(world.project, world.users["developer"], S.APPROVED, title="ship the cart")


def test_a_deploy_outside_the_window_is_refused_naming_the_next_window(world, approved):
    expected = close_now(world.project.environment)
    with pytest.raises(workflow.WindowClosed) as refused:
        workflow.deploy(world.users["developer"], approved)
    assert str(refused.value) == expected
    approved.refresh_from_db()
    assert approved.status == S.APPROVED and not approved.runs.exists()


def test_a_deploy_in_a_freeze_is_refused_with_its_reason_even_inside_a_window(world, approved):
    env = world.project.environment
    open_now(env)
    freeze_today(env, "Spring Festival")
    with pytest.raises(workflow.WindowClosed, match=r"frozen from .*: Spring Festival; next window opens"):
        workflow.deploy(world.users["maintainer"], approved)
    assert Ticket.objects.get(pk=approved.pk).status == S.APPROVED


def test_inside_a_window_a_deploy_goes_ahead_without_an_override(world, approved):
    open_now(world.project.environment)
    run = workflow.deploy(world.users["developer"], approved, override_reason="not needed")
    assert run.ticket.status == S.QUEUED
    assert not TicketEvent.objects.filter(action=TicketAction.WINDOW_OVERRIDE).exists()


def test_a_rollback_runs_outside_the_window_and_in_a_freeze(world, approved):
    env = world.project.environment
    close_now(env)
    freeze_today(env)
    rollback = helpers.make_ticket(world.project, world.users["maintainer"], S.APPROVED,
                                   kind=Ticket.Kind.ROLLBACK, rollback_of=approved)
    run = workflow.deploy(world.users["maintainer"], rollback)
    assert run.ticket.status == S.QUEUED


def test_an_owner_overrides_the_window_and_the_reason_is_recorded(world, approved):
    close_now(world.project.environment)
    owner = world.users["owner"]
    run = workflow.deploy(owner, approved, override_reason="hotfix for the payment outage")
    assert run.ticket.status == S.QUEUED
    override = approved.events.get(action=TicketAction.WINDOW_OVERRIDE)
    assert (override.actor, override.note) == (owner, "hotfix for the payment outage")
    assert list(approved.events.values_list("action", flat=True))[-2:] == [
        TicketAction.WINDOW_OVERRIDE, TicketAction.DEPLOY
    ]


@pytest.mark.parametrize("role", ["maintainer", "developer"])
def test_only_an_owner_may_override_the_window(world, approved, role):
    close_now(world.project.environment)
    with pytest.raises(PermissionDenied, match="Only an Owner"):
        workflow.deploy(world.users[role], approved, override_reason="I really want to")
    approved.refresh_from_db()
    assert approved.status == S.APPROVED
    assert not approved.events.filter(action=TicketAction.WINDOW_OVERRIDE).exists()


def test_an_override_without_a_reason_is_a_refusal(world, approved):
    expected = close_now(world.project.environment)
    with pytest.raises(workflow.WindowClosed, match=re.escape(expected)):
        workflow.deploy(world.users["owner"], approved, override_reason="   ")
    assert not approved.events.filter(action=TicketAction.WINDOW_OVERRIDE).exists()


def test_the_environment_refuses_an_unknown_zone_an_empty_window_and_a_backwards_freeze(world):
    env = world.project.environment
    env.time_zone = "Asia/Atlantis"
    with pytest.raises(ValidationError, match="not a known IANA time zone"):
        env.full_clean()
    with pytest.raises(ValidationError, match="close at another time"):
        DeployWindow(environment=env, weekdays="01", start=time(10), end=time(10)).full_clean()
    with pytest.raises(ValidationError, match="digits 0 .Monday. to 6"):
        DeployWindow(environment=env, weekdays="17", start=time(10), end=time(17)).full_clean()
    today = local_today()
    with pytest.raises(ValidationError, match="last day cannot come before"):
        DeployFreeze(environment=env, start=today, end=today - timedelta(days=1), reason="x").full_clean()


def test_the_window_form_stores_checked_weekdays_as_digits(world):
    form = DeployWindowForm({"weekdays": ["3", "0", "1", "2"], "start": "10:00", "end": "17:00"},
                            instance=DeployWindow(environment=world.project.environment))
    assert form.is_valid(), form.errors
    assert form.save().weekdays == "0123"
    assert DeployWindowForm(instance=DeployWindow.objects.get()).initial["weekdays"] == ["0", "1", "2", "3"]
    assert not DeployWindowForm({"start": "10:00", "end": "17:00"}).is_valid()


def test_the_page_disables_deploy_with_the_reason_and_offers_the_override_to_owners_only(client, world, approved):
    expected = close_now(world.project.environment)
    url = reverse("ticket_detail", args=[approved.pk])
    client.force_login(world.users["developer"])
    page = client.get(url).content.decode()
    button = re.search(r'<input[^>]*id="btn-deploy"[^>]*>', page).group(0)
    assert " disabled" in button
    assert re.search(r'id="deploy-window"[^>]*>([^<]*)<', page).group(1) == expected
    assert 'id="override-form"' not in page

    client.force_login(world.users["owner"])
    assert 'id="override-form"' in client.get(url).content.decode()
    response = client.post(reverse("ticket_deploy", args=[approved.pk]), {"override_reason": "security fix"},
                           follow=True)
    assert "Deploy queued." in response.content.decode()
    assert approved.events.get(action=TicketAction.WINDOW_OVERRIDE).note == "security fix"


def test_an_open_window_says_until_when(client, world, approved):
    env = world.project.environment
    env.time_zone = ZONE
    env.save()
    today, tomorrow = str(local_today().weekday()), (local_today() + timedelta(days=1)).weekday()
    # Today from midnight, on through the night until 09:00 tomorrow.
    DeployWindow.objects.create(environment=env, weekdays=today, start=time(0), end=time(12))
    DeployWindow.objects.create(environment=env, weekdays=today, start=time(12), end=time(9))
    client.force_login(world.users["developer"])
    page = client.get(reverse("ticket_detail", args=[approved.pk])).content.decode()
    text = re.search(r'id="deploy-window"[^>]*>([^<]*)<', page).group(1)
    when = (local_today() + timedelta(days=1)).isoformat()
    assert text == f"Deploys open now until {WEEKDAYS_ABBR[tomorrow]} {when} 09:00 {ZONE}."
    assert " disabled" not in re.search(r'<input[^>]*id="btn-deploy"[^>]*>', page).group(0)


def test_the_api_refuses_with_409_and_takes_an_owners_override_reason(world, approved):
    expected = close_now(world.project.environment)
    url = f"/api/tickets/{approved.pk}/deploy/"
    api = APIClient()
    api.force_authenticate(world.users["developer"])
    refused = api.post(url, {}, format="json")
    assert refused.status_code == 409 and refused.json()["detail"] == expected
    api.force_authenticate(world.users["maintainer"])
    assert api.post(url, {"override_reason": "please"}, format="json").status_code == 403
    api.force_authenticate(world.users["owner"])
    done = api.post(url, {"override_reason": "the fix for #4521"}, format="json")
    assert done.status_code == 202 and done.json()["status"] == S.QUEUED
    assert approved.events.get(action=TicketAction.WINDOW_OVERRIDE).note == "the fix for #4521"
