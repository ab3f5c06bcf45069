"""The worker's wait for a promote, with the real lease and console: it ends
on a promote, on a cancel, on the timeout, or when the run loses its project."""

from __future__ import annotations

import threading

import pytest
from django.utils import timezone

from engine.pipeline import Cancelled
from releases import workflow
from releases.lease import ProjectLease
from releases.models import DeployRun, Ticket, TicketAction
from releases.promotion import PromoteWait
from releases.recorder import Recorder
from releases.runlog import RunLog

from . import helpers

S = Ticket.Status


@pytest.fixture
def running(transactional_db, world, settings):
    settings.WALLE_PROMOTE_POLL = 1
    settings.WALLE_PROMOTE_TIMEOUT = 2
    ticket = helpers.make_ticket(world.project, world.users["developer"], S.DEPLOYING)
    run = DeployRun.objects.create(ticket=ticket, number=1, status=DeployRun.Status.RUNNING,
                                   started_at=timezone.now())
    log = RunLog(run, on_host=Recorder(run).host)
    with ProjectLease(run, "test:1:1") as lease:
        yield ticket, run, PromoteWait(run, lease, log)
    log.close()


def test_a_promote_ends_the_wait(running, world):
    ticket, run, wait = running
    timer = threading.Timer(0.5, lambda: workflow.promote(world.users["developer"], Ticket.objects.get(pk=ticket.pk)))
    timer.start()
    try:
        assert wait(2, 2) == ""
    finally:
        timer.join()
    ticket.refresh_from_db()
    assert ticket.status == S.DEPLOYING
    assert list(ticket.events.values_list("action", flat=True))[-2:] == [TicketAction.WAIT, TicketAction.PROMOTE]


def test_no_promote_in_time_ends_the_wait_with_the_reason(running):
    ticket, run, wait = running
    answer = wait(2, 3)
    assert answer == "no promote came within 2 s" and not isinstance(answer, Cancelled)  # a failure
    ticket.refresh_from_db()
    run.refresh_from_db()
    assert (ticket.status, run.status) == (S.DEPLOYING, DeployRun.Status.RUNNING)
    assert ticket.events.last().action == TicketAction.RESUME


def test_a_cancel_ends_the_wait_with_who_cancelled(running, world):
    ticket, run, wait = running
    timer = threading.Timer(0.5, lambda: workflow.cancel(world.users["maintainer"], Ticket.objects.get(pk=ticket.pk)))
    timer.start()
    try:
        answer = wait(2, 3)
        assert answer == "cancelled by maintainer"  # the engine switches back and stops
        assert isinstance(answer, Cancelled)  # a stop, not a failure
    finally:
        timer.join()
    ticket.refresh_from_db()
    run.refresh_from_db()
    assert (ticket.status, run.status) == (S.CANCELLING, DeployRun.Status.CANCELLING)


def test_a_cancel_pressed_as_the_wait_times_out_still_names_the_cancel(running, world):
    ticket, run, wait = running
    workflow.wait_for_promote(run, 2, 3)
    workflow.cancel(world.users["maintainer"], Ticket.objects.get(pk=ticket.pk))
    answer = wait._give_up("no promote came within 2 s")
    assert answer == "cancelled by maintainer" and isinstance(answer, Cancelled)
    run.refresh_from_db()
    assert run.status == DeployRun.Status.CANCELLING


def test_a_released_lock_ends_the_wait_without_switching_on(running, world):
    ticket, run, wait = running
    timer = threading.Timer(0.5, lambda: workflow.release_lock(world.users["maintainer"], world.project))
    timer.start()
    try:
        assert "lost its project lock" in wait(2, 2)
    finally:
        timer.join()
    run.refresh_from_db()
    assert run.status == DeployRun.Status.FAILED
