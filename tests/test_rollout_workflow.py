"""Rollout moves in the workflow: waiting for a promote, promote (who may,
from where), cancelling a waiting rollout (who may, how it ends), the
worker's timeout racing a promote or a cancel, the reaper, retries."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from accounts.permissions import Action, can
from releases import plans, workflow
from releases.models import DeployRun, ProjectLock, RunHost, Ticket, TicketAction
from releases.views import ticket_actions

from . import helpers

S = Ticket.Status
R = DeployRun.Status


def waiting_ticket(world, author: str = "developer") -> tuple[Ticket, DeployRun]:
    """A deploying ticket whose worker's rollout now waits for a promote."""
    ticket = helpers.make_ticket(world.project, world.users[author], S.DEPLOYING)
    run = DeployRun.objects.create(ticket=ticket, number=1, status=R.RUNNING, started_at=timezone.now())
    workflow.wait_for_promote(run, 2, 3)
    ticket.refresh_from_db()
    return ticket, run


def test_waiting_moves_the_ticket_and_the_run_and_says_which_batch(world):
    ticket, run = waiting_ticket(world)
    run.refresh_from_db()
    assert (ticket.status, run.status) == (S.WAITING, R.WAITING)
    assert ticket.events.last().note == "batch 2/3 waits for a promote"
    assert S.WAITING in Ticket.ACTIVE_STATUSES  # the project stays busy


@pytest.mark.parametrize("status", [s for s in S if s != S.WAITING])
def test_promote_is_refused_unless_the_ticket_waits(world, status):
    ticket = helpers.make_ticket(world.project, world.users["developer"], status)
    with pytest.raises(workflow.InvalidTransition):
        workflow.promote(world.users["owner"], ticket)


def test_a_promote_lets_the_worker_go_on(world):
    ticket, run = waiting_ticket(world)
    workflow.promote(world.users["developer"], ticket)
    run.refresh_from_db()
    ticket.refresh_from_db()
    assert (ticket.status, run.status) == (S.DEPLOYING, R.RUNNING)
    assert (ticket.events.last().action, ticket.events.last().actor) == ("promote", world.users["developer"])
    # The worker's timeout coming just after finds the promote and goes on.
    assert workflow.stop_waiting(run, "no promote came within 1 s") is False


def test_the_timeout_wins_over_a_later_promote(world):
    ticket, run = waiting_ticket(world)
    assert workflow.stop_waiting(run, "no promote came within 1 s") is True
    ticket.refresh_from_db()
    assert ticket.status == S.DEPLOYING and ticket.events.last().action == TicketAction.RESUME
    with pytest.raises(workflow.InvalidTransition):
        workflow.promote(world.users["owner"], ticket)


@pytest.mark.parametrize(("user", "allowed"), [
    ("developer", True), ("maintainer", True), ("owner", True), ("admin", True),
    ("reporter", False), ("guest", False), ("outsider", False),
])
def test_who_may_promote_is_who_may_deploy_the_ticket(world, user, allowed):
    ticket, _run = waiting_ticket(world)
    assert can(world.users[user], Action.PROMOTE, ticket) is allowed
    assert can(world.users[user], Action.PROMOTE, ticket) is can(world.users[user], Action.DEPLOY, ticket)
    assert ticket_actions(world.users[user], ticket)["promote"] is allowed
    if not allowed:
        with pytest.raises(PermissionDenied):
            workflow.promote(world.users[user], ticket)


def test_a_developer_may_not_promote_someone_elses_ticket(world):
    ticket, _run = waiting_ticket(world, author="maintainer")
    with pytest.raises(PermissionDenied):
        workflow.promote(world.users["developer"], ticket)


def test_cancelling_a_waiting_rollout_hands_the_switch_back_to_the_worker(world):
    ticket, run = waiting_ticket(world)
    ticket = workflow.cancel(world.users["developer"], ticket, "wrong build")
    run.refresh_from_db()
    assert (ticket.status, run.status) == (S.CANCELLING, R.CANCELLING)
    assert S.CANCELLING in Ticket.ACTIVE_STATUSES and R.CANCELLING in DeployRun.WORKING_STATUSES  # still held
    # The worker's next poll reads who cancelled, for the console and the run's error.
    assert run.error == "cancelled by developer" and run.finished_at is None
    event = ticket.events.last()
    assert (event.action, event.from_status, event.to_status, event.actor, event.note) == (
        "cancel", S.WAITING, S.CANCELLING, world.users["developer"], "wrong build")


def test_a_cancel_and_a_promote_exclude_each_other(world):
    ticket, run = waiting_ticket(world)
    stale = Ticket.objects.get(pk=ticket.pk)
    workflow.cancel(world.users["developer"], ticket)
    with pytest.raises(workflow.InvalidTransition):
        workflow.promote(world.users["owner"], stale)
    assert workflow.stop_waiting(run, "no promote came within 1 s") is False  # nor does the timeout win
    run.refresh_from_db()
    assert run.status == R.CANCELLING

    promoted, _run = waiting_ticket(world)
    stale = Ticket.objects.get(pk=promoted.pk)
    workflow.promote(world.users["developer"], promoted)
    with pytest.raises(workflow.InvalidTransition):
        workflow.cancel(world.users["owner"], stale)
    promoted.refresh_from_db()
    assert promoted.status == S.DEPLOYING


def test_a_waiting_ticket_without_a_waiting_run_is_not_cancelled(world):
    ticket = helpers.make_ticket(world.project, world.users["developer"], S.WAITING)
    with pytest.raises(workflow.InvalidTransition, match="stopped waiting"):
        workflow.cancel(world.users["developer"], ticket)
    ticket.refresh_from_db()
    assert ticket.status == S.WAITING and not ticket.events.filter(action=TicketAction.CANCEL).exists()


@pytest.mark.parametrize(("user", "allowed"), [
    ("developer", True), ("maintainer", True), ("owner", True), ("admin", True),
    ("reporter", False), ("guest", False), ("outsider", False),
    ("granted", False),  # a per-project approver: may cancel a pending ticket, not switch production back
])
def test_who_may_cancel_a_waiting_rollout_is_who_may_promote_it(world, user, allowed):
    from accounts import grants

    grants.grant(world.users["owner"], world.users["granted"], Action.APPROVE, world.project)
    ticket, _run = waiting_ticket(world)
    person = world.users[user]
    assert can(person, Action.CANCEL, ticket) is allowed
    assert can(person, Action.CANCEL, ticket) is can(person, Action.PROMOTE, ticket)
    assert ticket_actions(person, ticket)["cancel"] is allowed
    if not allowed:
        with pytest.raises(PermissionDenied):
            workflow.cancel(person, ticket)
        ticket.refresh_from_db()
        assert ticket.status == S.WAITING
    pending = helpers.make_ticket(world.project, world.users["developer"], S.PENDING)
    if user == "granted":  # the usual right to cancel a ticket that never ran is unchanged
        assert can(person, Action.CANCEL, pending) is True


def test_a_developer_may_not_cancel_someone_elses_waiting_rollout_and_is_told_why(world):
    ticket, _run = waiting_ticket(world, author="maintainer")
    with pytest.raises(PermissionDenied, match="cancels this ticket's rollout"):
        workflow.cancel(world.users["developer"], ticket)


def _worker_finishes(run: DeployRun, world, host_status: str) -> DeployRun:
    """The worker after a cancel: its host reports, then finish_run as tasks.run_deploy calls it."""
    RunHost.objects.create(run=run, host=world.project.hosts.get(), status=host_status)
    assert workflow.finish_run(run, ok=False, error="batch 2/3: cancelled by developer", failed_batch="2/3")
    run.refresh_from_db()
    return run


def test_the_cancelled_run_ends_cancelled_once_every_switched_host_is_back(world):
    ticket, run = waiting_ticket(world)
    workflow.cancel(world.users["developer"], ticket)
    run = _worker_finishes(run, world, RunHost.Status.REVERTED)
    ticket.refresh_from_db()
    assert (ticket.status, run.status, run.failed_batch) == (S.CANCELLED, R.CANCELLED, "")
    assert run.error == "batch 2/3: cancelled by developer" and run.finished_at is not None
    assert list(ticket.events.values_list("action", flat=True))[-2:] == [TicketAction.CANCEL, TicketAction.SWITCH_BACK]
    assert ticket.events.last().to_status == S.CANCELLED
    assert run.log_lines.last().text.startswith("Cancelled: every host this run switched")
    assert ticket_actions(world.users["developer"], ticket)["retry"] is False  # cancelled is final


def test_a_host_that_could_not_be_switched_back_fails_the_cancelled_ticket(world):
    ticket, run = waiting_ticket(world)
    workflow.cancel(world.users["developer"], ticket)
    run = _worker_finishes(run, world, RunHost.Status.SWITCHED)  # still serves the run's release
    ticket.refresh_from_db()
    assert (ticket.status, run.status) == (S.FAILED, R.FAILED)
    assert ticket.events.last().action == TicketAction.FAIL
    assert ticket_actions(world.users["maintainer"], ticket)["rollback"] is True


@pytest.mark.parametrize("cancelled", [False, True])
def test_a_waiting_or_cancelling_run_whose_worker_died_is_reaped(world, settings, cancelled):
    ticket, run = waiting_ticket(world)
    if cancelled:  # the worker died before it switched the canary back
        workflow.cancel(world.users["developer"], ticket)
        RunHost.objects.create(run=run, host=world.project.hosts.get(), status=RunHost.Status.SWITCHED)
    stale = timezone.now() - timedelta(seconds=settings.WALLE_LOCK_LEASE + 60)
    ProjectLock.objects.create(project=world.project, run=run, owner="dead:1:1", acquired_at=stale,
                               heartbeat_at=stale, lease_seconds=settings.WALLE_LOCK_LEASE)
    assert workflow.reap_stale_runs(world.project) == [run]
    ticket.refresh_from_db()
    run.refresh_from_db()
    assert (ticket.status, run.status) == (S.FAILED, R.FAILED)


def failed_run(world, **run_values) -> tuple[Ticket, DeployRun]:
    ticket = helpers.make_ticket(world.project, world.users["developer"], S.FAILED)
    values = dict(release_name="20260101-000000-1", commit="b" * 40) | run_values
    run = DeployRun.objects.create(ticket=ticket, number=1, status=R.FAILED, **values)
    return ticket, run


def test_a_retry_reuses_the_failed_runs_release_and_commit(world, django_capture_on_commit_callbacks):
    ticket, first = failed_run(world)
    host = world.project.hosts.get()
    RunHost.objects.create(run=first, host=host, status=RunHost.Status.DONE)
    with django_capture_on_commit_callbacks(execute=False):
        retry = workflow.retry(world.users["developer"], ticket)
    ticket.refresh_from_db()
    assert (ticket.status, retry.number, retry.resumes) == (S.QUEUED, 2, first)
    assert ticket.events.last().action == TicketAction.RETRY
    plan = plans.build_deploy_plan(retry, [host], key=plans.Secret("k"))
    assert (plan.release_name, plan.commit) == ("20260101-000000-1", "b" * 40)
    assert plan.reuse_prepared and plan.keep_prepared and plan.done_targets == {host.pk}


@pytest.mark.parametrize("run_values", [{"release_name": ""}, {"commit": ""}])
def test_a_run_that_never_named_its_release_cannot_be_retried(world, run_values):
    ticket, _run = failed_run(world, **run_values)
    with pytest.raises(workflow.InvalidTransition):
        workflow.retry(world.users["developer"], ticket)
    assert ticket_actions(world.users["developer"], ticket)["retry"] is False


def test_retry_takes_the_right_to_deploy(world):
    ticket, _run = failed_run(world)
    assert ticket_actions(world.users["developer"], ticket)["retry"] is True
    with pytest.raises(PermissionDenied):
        workflow.retry(world.users["reporter"], ticket)


def test_the_plan_carries_the_projects_rollout_and_gate_and_a_tickets_more_careful_rollout(world):
    project = world.project
    project.rollout_strategy, project.canary_hosts, project.batch_percent = "one_by_one", 2, 25
    project.promote_required, project.health_path, project.health_host_header = True, "/up", "www.example.com"
    project.save()
    ticket = helpers.make_ticket(project, world.users["developer"], S.APPROVED, rollout_strategy="canary")
    rollout = plans.rollout_for(ticket)
    assert (rollout.strategy, rollout.canary, rollout.batch_percent, rollout.promote) == ("canary", 2, 25, True)
    gate = plans.health_check_for(project)
    assert (gate.path, gate.host_header, gate.expected_status) == ("/up", "www.example.com", 200)
    assert project.allowed_strategies() == ["one_by_one", "canary"]


@pytest.mark.parametrize(("field", "value"), [
    ("health_path", "/x\r\nHost: evil"), ("health_path", "no-slash"), ("health_host_header", "a b"),
    ("health_host_header", "x\r\nX-Evil: 1"), ("health_command", "true\nrm -rf /"), ("health_status", 99),
])
def test_gate_settings_that_could_change_the_request_or_hide_a_command_are_refused(world, field, value):
    from django.core.exceptions import ValidationError

    setattr(world.project, field, value)
    with pytest.raises(ValidationError) as refused:
        world.project.full_clean()
    assert field in refused.value.message_dict
