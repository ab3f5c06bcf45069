"""Scheduled deploys: an approved ticket set to run at a given time never starts
early, starts once, is refused at its time if it changed or the window is
closed, and can be unscheduled; the last test lets the real worker's schedule
deploy one to the real target hosts."""

from __future__ import annotations

import re
import threading
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import PermissionDenied
from django.core.management import call_command
from django.db import close_old_connections
from django.urls import reverse
from django.utils import timezone
from django_q.models import Schedule
from rest_framework.test import APIClient

from accounts.models import Membership, Role
from projects.models import DeployFreeze
from releases import tasks, workflow
from releases.models import DeployRun, Ticket, TicketAction
from releases.schedules import SCHEDULED_DEPLOYS, ensure_schedules

from . import helpers
from .deploy_fixtures import V1_TEXT, open_approved_ticket, wait_for
from .test_deploy_windows_workflow import ZONE, close_now, open_now

S = Ticket.Status


@pytest.fixture
def approved(world) -> Ticket:
    return helpers.make_ticket(world.project, world.users["developer"], S.APPROVED, title="ship the cart")


def soon(minutes: int = 10) -> datetime:
    return timezone.now().replace(microsecond=0) + timedelta(minutes=minutes)


def scheduled(world, ticket: Ticket, at: datetime, who: str = "developer") -> Ticket:
    return workflow.schedule(world.users[who], ticket, at, ticket.version)


def refusal(ticket: Ticket) -> str:
    return ticket.events.get(action=TicketAction.SCHEDULE_REFUSED).note


def test_scheduling_records_who_when_and_the_version_and_unscheduling_clears_it(world, approved):
    at = soon()
    ticket = scheduled(world, approved, at)
    assert (ticket.scheduled_at, ticket.scheduled_by, ticket.scheduled_version) == (
        at, world.users["developer"], approved.version)
    assert ticket.events.get(action=TicketAction.SCHEDULE).actor == world.users["developer"]
    ticket = workflow.unschedule(world.users["developer"], ticket)
    assert (ticket.scheduled_at, ticket.scheduled_by, ticket.scheduled_version, ticket.status) == (
        None, None, None, S.APPROVED)
    assert ticket.events.filter(action=TicketAction.UNSCHEDULE).count() == 1
    with pytest.raises(workflow.InvalidTransition, match="not scheduled"):
        workflow.unschedule(world.users["developer"], ticket)


def test_only_an_approved_ticket_as_seen_by_one_who_may_deploy_it_is_scheduled_in_the_future(world, approved):
    pending = helpers.make_ticket(world.project, world.users["developer"], S.PENDING)
    with pytest.raises(workflow.InvalidTransition, match="Only an approved ticket"):
        scheduled(world, pending, soon())
    with pytest.raises(workflow.WorkflowError, match="in the future"):
        scheduled(world, approved, timezone.now() - timedelta(seconds=1))
    with pytest.raises(PermissionDenied):
        scheduled(world, approved, soon(), who="reporter")
    with pytest.raises(workflow.StaleTicket):
        workflow.schedule(world.users["developer"], approved, soon(), approved.version - 1 or 99)
    approved.refresh_from_db()
    assert approved.scheduled_at is None
    assert not approved.events.filter(action=TicketAction.SCHEDULE).exists()


def test_scheduling_into_a_closed_window_is_refused_at_once(world, approved):
    expected = close_now(world.project.environment)
    with pytest.raises(workflow.WindowClosed, match=re.escape(expected)):
        scheduled(world, approved, soon())
    assert Ticket.objects.get(pk=approved.pk).scheduled_at is None


def test_a_scheduled_ticket_never_starts_before_its_time(world, approved):
    at = soon()
    scheduled(world, approved, at)
    assert workflow.run_due_schedules(at - timedelta(seconds=1)) == []
    approved.refresh_from_db()
    assert approved.status == S.APPROVED and approved.scheduled_at == at and not approved.runs.exists()

    [run] = workflow.run_due_schedules(at)
    approved.refresh_from_db()
    assert approved.status == S.QUEUED and approved.scheduled_at is None
    assert run.triggered_by == world.users["developer"]  # as the user who scheduled it
    assert approved.events.last().actor == world.users["developer"]


def test_a_due_ticket_is_started_once_when_swept_again(world, approved):
    at = soon()
    scheduled(world, approved, at)
    assert len(workflow.run_due_schedules(at)) == 1
    assert workflow.run_due_schedules(at + timedelta(minutes=1)) == []
    assert approved.runs.count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_workers_sweeping_at_once_start_a_due_ticket_once(world, monkeypatch):
    ticket = helpers.make_ticket(world.project, world.users["developer"], S.APPROVED)
    at = soon()
    scheduled(world, ticket, at)
    gate = threading.Barrier(2)
    started: list[int] = []

    def sweep() -> None:
        gate.wait()
        try:
            started.extend(run.pk for run in workflow.run_due_schedules(at))
        finally:
            close_old_connections()

    # The runs are queued for a worker after commit: keep them out of the broker.
    monkeypatch.setattr(workflow, "_enqueue", lambda run_id: None)
    workers = [threading.Thread(target=sweep) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert len(started) == 1
    assert DeployRun.objects.filter(ticket=ticket).count() == 1
    assert not ticket.events.filter(action=TicketAction.SCHEDULE_REFUSED).exists()


def test_a_ticket_edited_after_scheduling_is_refused_at_its_time_and_stays_approved(world):
    # In "test" an edit keeps the ticket approved, with a new version.
    project = helpers.make_project(world.team, env="test")
    ticket = helpers.make_ticket(project, world.users["developer"], S.APPROVED)
    at = soon()
    scheduled(world, ticket, at)
    workflow.edit(world.users["developer"], Ticket.objects.get(pk=ticket.pk), commit="b" * 40)
    assert workflow.run_due_schedules(at) == []
    ticket.refresh_from_db()
    assert (ticket.status, ticket.scheduled_at) == (S.APPROVED, None) and not ticket.runs.exists()
    assert "edited after it was scheduled" in refusal(ticket)


def test_a_ticket_sent_back_for_approval_is_refused_at_its_time(world, approved):
    at = soon()
    scheduled(world, approved, at)
    workflow.edit(world.users["developer"], Ticket.objects.get(pk=approved.pk), title="ship the cart, v2")
    workflow.run_due_schedules(at)
    approved.refresh_from_db()
    assert approved.status == S.PENDING
    assert refusal(approved) == "The ticket is pending approval, no longer approved."


def test_a_freeze_added_after_scheduling_refuses_it_at_its_time(world, approved):
    env = world.project.environment
    open_now(env)
    at = soon()
    scheduled(world, approved, at)
    day = at.astimezone(ZoneInfo(ZONE)).date()
    DeployFreeze.objects.create(environment=env, start=day, end=day, reason="database migration")
    assert workflow.run_due_schedules(at) == []
    approved.refresh_from_db()
    assert approved.status == S.APPROVED and approved.scheduled_at is None
    assert "frozen" in refusal(approved) and "database migration" in refusal(approved)


def test_a_scheduler_who_lost_the_right_to_deploy_is_refused(world, approved):
    at = soon()
    scheduled(world, approved, at)
    Membership.objects.filter(user=world.users["developer"], team=world.team).update(role=Role.REPORTER)
    assert workflow.run_due_schedules(at) == []
    approved.refresh_from_db()
    assert approved.status == S.APPROVED and not approved.runs.exists()
    assert "Only its submitter or a Maintainer of web deploys this ticket." in refusal(approved)


def test_a_manual_deploy_clears_the_schedule(world, approved):
    at = soon()
    scheduled(world, approved, at)
    workflow.deploy(world.users["developer"], Ticket.objects.get(pk=approved.pk))
    approved.refresh_from_db()
    assert approved.status == S.QUEUED and approved.scheduled_at is None
    assert approved.events.get(action=TicketAction.UNSCHEDULE).note == "deployed before its scheduled time"
    assert workflow.run_due_schedules(at) == []
    assert approved.runs.count() == 1


def test_cancelling_clears_the_schedule(world, approved):
    scheduled(world, approved, soon())
    ticket = workflow.cancel(world.users["developer"], Ticket.objects.get(pk=approved.pk))
    assert ticket.scheduled_at is None


def test_the_page_schedules_in_the_environments_zone_and_unschedules(client, world, approved):
    env = world.project.environment
    env.time_zone = ZONE
    env.save()
    client.force_login(world.users["developer"])
    url = reverse("ticket_detail", args=[approved.pk])
    page = client.get(url).content.decode()
    assert re.search(r'id="schedule-zone">([^<]*)<', page).group(1) == ZONE
    when = (timezone.now() + timedelta(days=3)).astimezone(ZoneInfo(ZONE)).replace(hour=11, minute=0, second=0,
                                                                                    microsecond=0)
    response = client.post(reverse("ticket_schedule", args=[approved.pk]),
                           {"at": when.strftime("%Y-%m-%dT%H:%M"), "version": approved.version}, follow=True)
    text = response.content.decode()
    assert "Deploy scheduled." in text
    assert re.search(r'id="schedule-state">([^<]*)<', text).group(1) == (
        f"Scheduled for {when:%a %Y-%m-%d} 11:00 {ZONE} by developer.")
    approved.refresh_from_db()
    assert approved.scheduled_at == when  # 11:00 in Shanghai, not in the site's zone

    bad = client.post(reverse("ticket_schedule", args=[approved.pk]), {"at": "tomorrow", "version": 1}, follow=True)
    assert "Enter a valid date/time." in bad.content.decode()
    response = client.post(reverse("ticket_unschedule", args=[approved.pk]), follow=True)
    assert "Schedule removed." in response.content.decode()
    assert 'id="schedule-state"' not in response.content.decode()


def test_the_api_schedules_naive_times_in_the_environments_zone_and_unschedules(world, approved):
    env = world.project.environment
    env.time_zone = ZONE
    env.save()
    api = APIClient()
    api.force_authenticate(world.users["developer"])
    local = (timezone.now() + timedelta(days=2)).astimezone(ZoneInfo(ZONE)).replace(
        hour=9, minute=30, second=0, microsecond=0)
    answer = api.post(f"/api/tickets/{approved.pk}/schedule/",
                      {"at": local.strftime("%Y-%m-%dT%H:%M"), "version": approved.version}, format="json")
    assert answer.status_code == 200, answer.json()
    assert datetime.fromisoformat(answer.json()["scheduled_at"]) == local
    stale = api.post(f"/api/tickets/{approved.pk}/schedule/",
                     {"at": local.isoformat(), "version": approved.version + 1}, format="json")
    assert stale.status_code == 409
    gone = api.post(f"/api/tickets/{approved.pk}/unschedule/", format="json")
    assert gone.status_code == 200 and gone.json()["scheduled_at"] is None


def test_the_every_minute_schedule_is_registered_once(db):
    ensure_schedules()
    ensure_schedules()
    schedule = Schedule.objects.get(name=SCHEDULED_DEPLOYS)
    assert (schedule.func, schedule.schedule_type, schedule.minutes) == (
        "releases.tasks.run_scheduled_deploys", Schedule.MINUTES, 1)


@pytest.mark.sshd
@pytest.mark.worker
def test_the_real_worker_deploys_a_due_scheduled_ticket_to_the_real_hosts(site, qcluster):
    ticket = open_approved_ticket(site, "v1")
    at = timezone.now() + timedelta(seconds=3)
    workflow.schedule(site.users["developer"], ticket, at, ticket.version)
    assert tasks.run_scheduled_deploys() == 0  # not yet
    # The worker's own scheduler fires the every-minute schedule.
    ensure_schedules()
    Schedule.objects.filter(name=SCHEDULED_DEPLOYS).update(next_run=timezone.now())

    def finished() -> Ticket | None:
        ticket.refresh_from_db()
        return ticket if ticket.status in (S.SUCCEEDED, S.FAILED) else None

    done = wait_for(finished, timeout=180)
    run = done.latest_run()
    assert done.status == S.SUCCEEDED, run.error
    assert run.started_at >= at and run.triggered_by == site.users["developer"]
    assert all(V1_TEXT in page for page in site.pages())
    assert done.runs.count() == 1


def test_the_api_schema_lists_schedule_unschedule_and_the_override_reason(tmp_path, db):
    out = tmp_path / "schema.yml"
    call_command("spectacular", "--fail-on-warn", "--file", str(out))
    text = out.read_text()
    assert "/api/tickets/{id}/schedule/" in text and "/api/tickets/{id}/unschedule/" in text
    assert "override_reason" in text and "scheduled_at" in text
