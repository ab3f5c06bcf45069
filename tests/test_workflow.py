"""The ticket workflow: every transition, the compare-and-set, events, locks."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied
from django.utils import timezone, translation

from releases import workflow
from releases.lease import ProjectLease
from releases.models import DeployRun, ProjectLock, RunHost, Ticket, TicketAction, TicketEvent

from . import helpers

S = Ticket.Status
ALL_STATUSES = list(S)
USER_ACTIONS = {
    "approve": lambda w, t: workflow.approve(w.users["owner"], t, version=t.version),
    "reject": lambda w, t: workflow.reject(w.users["owner"], t, "not today"),
    "cancel": lambda w, t: workflow.cancel(w.users["owner"], t),
    "deploy": lambda w, t: workflow.deploy(w.users["owner"], t),
}


# Written out here, independently of workflow.TRANSITIONS, so a wrong entry
# there fails a test instead of being copied into it.
LEGAL = {
    ("approve", S.PENDING): S.APPROVED,
    ("reject", S.PENDING): S.REJECTED,
    ("cancel", S.PENDING): S.CANCELLED,
    ("cancel", S.APPROVED): S.CANCELLED,
    ("cancel", S.REJECTED): S.CANCELLED,
    ("cancel", S.QUEUED): S.CANCELLED,
    ("deploy", S.APPROVED): S.QUEUED,
    ("deploy", S.FAILED): S.QUEUED,
    # ("cancel", S.WAITING) -> CANCELLING needs the waiting run beside the ticket:
    # tests/test_rollout_workflow.py. Without one, as here, it is refused.
}


@pytest.mark.parametrize("status", ALL_STATUSES)
@pytest.mark.parametrize("action", list(USER_ACTIONS))
def test_each_action_is_legal_exactly_where_the_table_says(world, status, action, django_capture_on_commit_callbacks):
    ticket = helpers.make_ticket(world.project, world.users["developer"], status)
    expected = LEGAL.get((action, status))
    events_before = ticket.events.count()
    with django_capture_on_commit_callbacks(execute=False):
        if expected is None:
            with pytest.raises(workflow.InvalidTransition):
                USER_ACTIONS[action](world, ticket)
        else:
            USER_ACTIONS[action](world, ticket)
    ticket.refresh_from_db()
    assert ticket.status == (expected or status)
    assert ticket.events.count() == events_before + (1 if expected else 0)
    if expected:
        event = ticket.events.last()
        assert (event.action, event.from_status, event.to_status, event.actor) == (
            action, status, expected, world.users["owner"],
        )


def test_a_double_approval_approves_once(world):
    ticket = helpers.make_ticket(world.project, world.users["developer"])
    stale_copy = Ticket.objects.get(pk=ticket.pk)
    workflow.approve(world.users["owner"], ticket, version=ticket.version)
    with pytest.raises(workflow.InvalidTransition):
        workflow.approve(world.users["maintainer"], stale_copy, version=stale_copy.version)
    assert ticket.events.filter(action=TicketAction.APPROVE).count() == 1


def test_submit_needs_approval_in_production_and_not_in_test(world):
    prod = workflow.submit(world.users["developer"], world.project, title="t", ref="master", commit="b" * 40)
    assert prod.status == S.PENDING
    test_project = helpers.make_project(world.team, env="test")
    quick = workflow.submit(world.users["developer"], test_project, title="t", ref="master")
    assert quick.status == S.APPROVED
    assert quick.events.get().action == TicketAction.SUBMIT


def test_reporters_cannot_submit_and_nothing_is_created(world):
    with pytest.raises(PermissionDenied):
        workflow.submit(world.users["reporter"], world.project, title="t", ref="master")
    assert not Ticket.objects.exists()


def test_hosts_outside_the_project_are_refused(world):
    stray = helpers.make_host()
    with pytest.raises(workflow.WorkflowError, match="not an enabled host"):
        workflow.submit(world.users["developer"], world.project, title="t", ref="master", hosts=[stray])


def test_self_approval_is_refused_in_production(world):
    ticket = helpers.make_ticket(world.project, world.users["maintainer"])
    with pytest.raises(PermissionDenied, match="someone else"):
        workflow.approve(world.users["maintainer"], ticket, version=ticket.version)
    ticket.refresh_from_db()
    assert ticket.status == S.PENDING


def test_a_rejected_ticket_is_edited_and_resubmitted(world):
    ticket = helpers.make_ticket(world.project, world.users["developer"])
    workflow.reject(world.users["owner"], ticket, "wrong commit")
    assert ticket.reject_reason == "wrong commit"
    ticket = workflow.edit(world.users["developer"], ticket, commit="c" * 40)
    assert (ticket.status, ticket.commit, ticket.reject_reason) == (S.PENDING, "c" * 40, "")
    assert list(ticket.events.values_list("action", flat=True)) == [
        TicketAction.SUBMIT, TicketAction.REJECT, TicketAction.RESUBMIT
    ]


def test_editing_an_approved_ticket_needs_approval_again(world):
    ticket = helpers.make_ticket(world.project, world.users["developer"], S.APPROVED)
    ticket = workflow.edit(world.users["developer"], ticket, title="new title")
    assert ticket.status == S.PENDING


def test_notes_are_stored_in_the_installations_language_whoever_acts(world, settings):
    """A Chinese reader's edit writes the timeline in WALLE_LANGUAGE (English
    here), which every later reader shares; the Chinese installation's in Chinese."""
    ticket = helpers.make_ticket(world.project, world.users["developer"], S.APPROVED)
    with translation.override("zh-hans"):
        ticket = workflow.edit(world.users["developer"], ticket, title="new title")
    assert ticket.events.last().note == "changed title; needs approval again"
    settings.LANGUAGE_CODE = "zh-hans"
    ticket = workflow.edit(world.users["developer"], ticket, title="newer title")
    assert ticket.events.last().note == "修改了 title"


def test_only_the_author_edits(world):
    ticket = helpers.make_ticket(world.project, world.users["developer"])
    with pytest.raises(PermissionDenied):
        workflow.edit(world.users["maintainer"], ticket, title="hijack")


def test_reject_needs_a_reason(world):
    ticket = helpers.make_ticket(world.project, world.users["developer"])
    with pytest.raises(workflow.WorkflowError):
        workflow.reject(world.users["owner"], ticket, "  ")


def test_deploy_queues_one_run_after_commit(world, django_capture_on_commit_callbacks):
    ticket = helpers.make_ticket(world.project, world.users["developer"], S.APPROVED)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        run = workflow.deploy(world.users["developer"], ticket)
    assert (run.number, run.status) == (1, DeployRun.Status.QUEUED)
    assert len(callbacks) == 1
    ticket.refresh_from_db()
    assert ticket.status == S.QUEUED


def test_a_second_ticket_of_a_busy_project_is_refused_clearly(world, django_capture_on_commit_callbacks):
    first = helpers.make_ticket(world.project, world.users["developer"], S.APPROVED)
    second = helpers.make_ticket(world.project, world.users["developer"], S.APPROVED)
    with django_capture_on_commit_callbacks(execute=False):
        workflow.deploy(world.users["developer"], first)
        with pytest.raises(workflow.Conflict, match=f"#{first.pk}"):
            workflow.deploy(world.users["developer"], second)
    second.refresh_from_db()
    assert second.status == S.APPROVED


def test_start_run_claims_once(world, django_capture_on_commit_callbacks):
    ticket = helpers.make_ticket(world.project, world.users["developer"], S.APPROVED)
    with django_capture_on_commit_callbacks(execute=False):
        run = workflow.deploy(world.users["developer"], ticket)
    assert workflow.start_run(run.pk, "w1") is not None
    assert workflow.start_run(run.pk, "w2") is None  # a re-delivered task does nothing
    ticket.refresh_from_db()
    assert ticket.status == S.DEPLOYING


def test_a_cancelled_queued_ticket_is_never_started(world, django_capture_on_commit_callbacks):
    ticket = helpers.make_ticket(world.project, world.users["developer"], S.APPROVED)
    with django_capture_on_commit_callbacks(execute=False):
        run = workflow.deploy(world.users["developer"], ticket)
    workflow.cancel(world.users["developer"], ticket)
    assert workflow.start_run(run.pk, "w1") is None
    run.refresh_from_db()
    assert run.status == DeployRun.Status.CANCELLED


def _running(world, ticket=None):
    ticket = ticket or helpers.make_ticket(world.project, world.users["developer"], S.QUEUED)
    run = DeployRun.objects.create(ticket=ticket, number=1)
    return workflow.start_run(run.pk, "w")


def test_finish_run_ends_ticket_and_a_failed_ticket_can_deploy_again(world, django_capture_on_commit_callbacks):
    run = _running(world)
    workflow.finish_run(run, ok=False, error="host 127.0.0.12 unreachable")
    ticket = Ticket.objects.get(pk=run.ticket_id)
    assert ticket.status == S.FAILED
    assert ticket.events.last().note == "host 127.0.0.12 unreachable"
    with django_capture_on_commit_callbacks(execute=False):
        again = workflow.deploy(world.users["developer"], ticket)
    assert again.number == 2


def test_the_project_lock_is_exclusive_and_a_stale_one_is_taken_over(world):
    first = _running(world)
    taken, _ = ProjectLease(first, "worker-a").acquire()
    assert taken
    second_ticket = helpers.make_ticket(world.project, world.users["developer"], S.QUEUED)
    second = DeployRun.objects.create(ticket=second_ticket, number=1, status=DeployRun.Status.RUNNING)
    taken, note = ProjectLease(second, "worker-b").acquire()
    assert not taken and "locked by run" in note
    ProjectLock.objects.filter(run=first).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    taken, note = ProjectLease(second, "worker-b").acquire()
    assert taken and "taken over" in note
    first.refresh_from_db()
    assert first.status == DeployRun.Status.FAILED
    assert Ticket.objects.get(pk=first.ticket_id).status == S.FAILED
    assert TicketEvent.objects.filter(ticket=first.ticket, action=TicketAction.LOCK_TAKEN_OVER).exists()


def test_a_dead_run_does_not_block_the_next_deploy(world, django_capture_on_commit_callbacks):
    dead = _running(world)
    ProjectLease(dead, "worker-a").acquire()
    ProjectLock.objects.filter(run=dead).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    nxt = helpers.make_ticket(world.project, world.users["developer"], S.APPROVED)
    with django_capture_on_commit_callbacks(execute=False):
        workflow.deploy(world.users["developer"], nxt)
    assert Ticket.objects.get(pk=dead.ticket_id).status == S.FAILED
    assert not ProjectLock.objects.exists()


def test_maintainers_release_a_stuck_lock_and_developers_cannot(world):
    run = _running(world)
    ProjectLease(run, "worker-a").acquire()
    with pytest.raises(PermissionDenied):
        workflow.release_lock(world.users["developer"], world.project)
    workflow.release_lock(world.users["maintainer"], world.project)
    assert not ProjectLock.objects.exists()
    assert Ticket.objects.get(pk=run.ticket_id).status == S.FAILED
    assert TicketEvent.objects.filter(action=TicketAction.RELEASE_LOCK, actor=world.users["maintainer"]).exists()


def test_rollback_needs_a_switched_deploy_and_follows_the_environment_rule(world):
    ticket = helpers.make_ticket(world.project, world.users["developer"], S.FAILED)
    with pytest.raises(workflow.WorkflowError, match="never switched"):
        workflow.request_rollback(world.users["maintainer"], ticket)
    run = DeployRun.objects.create(ticket=ticket, number=1, status=DeployRun.Status.FAILED)
    RunHost.objects.create(run=run, host=world.project.hosts.get(), status=RunHost.Status.SWITCHED)
    with pytest.raises(PermissionDenied):
        workflow.request_rollback(world.users["developer"], ticket)
    rollback = workflow.request_rollback(world.users["maintainer"], ticket)
    assert (rollback.kind, rollback.status, rollback.rollback_of) == (Ticket.Kind.ROLLBACK, S.APPROVED, ticket)
    env = world.project.environment
    env.rollback_needs_approval = True
    env.save()
    assert workflow.request_rollback(world.users["maintainer"], ticket).status == S.PENDING


def test_a_late_finish_from_a_reaped_run_does_not_touch_the_ticket(world, django_capture_on_commit_callbacks):
    dead = _running(world)
    workflow.finish_run(dead, ok=False, error="Interrupted")  # reaped
    ticket = Ticket.objects.get(pk=dead.ticket_id)
    with django_capture_on_commit_callbacks(execute=False):
        again = workflow.deploy(world.users["developer"], ticket)
    workflow.start_run(again.pk, "w2")
    workflow.finish_run(dead, ok=True)  # the zombie worker wakes up and reports success
    ticket.refresh_from_db()
    dead.refresh_from_db()
    assert (ticket.status, dead.status) == (S.DEPLOYING, DeployRun.Status.FAILED)


def test_editing_a_ticket_that_changed_meanwhile_is_refused(world):
    ticket = helpers.make_ticket(world.project, world.users["developer"])
    stale = Ticket.objects.get(pk=ticket.pk)
    workflow.approve(world.users["owner"], ticket, version=ticket.version)
    workflow.cancel(world.users["owner"], ticket)
    with pytest.raises(workflow.InvalidTransition):
        workflow.edit(world.users["developer"], stale, title="too late")
    assert Ticket.objects.get(pk=ticket.pk).title != "too late"


def test_a_rejected_ticket_in_an_environment_without_approval_returns_approved(world):
    project = helpers.make_project(world.team, env="test")
    ticket = helpers.make_ticket(project, world.users["developer"], S.REJECTED)
    ticket = workflow.edit(world.users["developer"], ticket, commit="d" * 40)
    assert (ticket.status, ticket.commit) == (S.APPROVED, "d" * 40)
    assert ticket.events.last().action == TicketAction.RESUBMIT_APPROVED


def test_deploy_refuses_a_host_disabled_since_the_ticket_was_opened(world):
    ticket = helpers.make_ticket(world.project, world.users["developer"], S.APPROVED)
    world.project.hosts.update(enabled=False)
    with pytest.raises(workflow.WorkflowError, match="not an enabled host|no enabled hosts"):
        workflow.deploy(world.users["developer"], ticket)
    ticket.refresh_from_db()
    assert ticket.status == S.APPROVED


def test_a_run_lost_in_the_queue_is_failed_and_frees_the_project(world, django_capture_on_commit_callbacks, settings):
    ticket = helpers.make_ticket(world.project, world.users["developer"], S.APPROVED)
    with django_capture_on_commit_callbacks(execute=False):  # the task never reaches a broker
        run = workflow.deploy(world.users["developer"], ticket)
    assert workflow.reap_all_stale_runs() == []
    DeployRun.objects.filter(pk=run.pk).update(created_at=timezone.now() - timedelta(days=1))
    assert workflow.reap_all_stale_runs() == [run]
    ticket.refresh_from_db()
    assert ticket.status == S.FAILED
    assert "lost" in ticket.events.last().note


def test_rollback_covers_only_the_hosts_the_ticket_switched(world):
    second = helpers.make_host()
    world.project.hosts.add(second)
    ticket = helpers.make_ticket(world.project, world.users["developer"], S.FAILED)
    run = DeployRun.objects.create(ticket=ticket, number=1, status=DeployRun.Status.FAILED)
    first = world.project.hosts.exclude(pk=second.pk).get()
    RunHost.objects.create(run=run, host=first, status=RunHost.Status.SWITCHED, previous_release="20260101-000000-1")
    RunHost.objects.create(run=run, host=second, status=RunHost.Status.CLEANED)
    rollback = workflow.request_rollback(world.users["maintainer"], ticket)
    assert list(rollback.hosts.all()) == [first]


def test_rollback_after_a_rerun_restores_what_was_live_before_the_ticket(world):
    from releases.plans import rollback_releases

    ticket = helpers.make_ticket(world.project, world.users["developer"], S.SUCCEEDED)
    host = world.project.hosts.get()
    run1 = DeployRun.objects.create(ticket=ticket, number=1, status=DeployRun.Status.FAILED)
    RunHost.objects.create(run=run1, host=host, status=RunHost.Status.SWITCHED,
                           release="20260102-000000-9", previous_release="20260101-000000-1")
    run2 = DeployRun.objects.create(ticket=ticket, number=2, status=DeployRun.Status.SUCCEEDED)
    RunHost.objects.create(run=run2, host=host, status=RunHost.Status.DONE,
                           release="20260103-000000-9", previous_release="20260102-000000-9")
    rollback = workflow.request_rollback(world.users["maintainer"], ticket)
    assert rollback_releases(rollback, [host]) == [(host, "20260101-000000-1")]


def test_rolling_back_to_a_release_that_is_not_kept_is_refused(world):
    ticket = helpers.make_ticket(world.project, world.users["developer"], S.SUCCEEDED)
    run = DeployRun.objects.create(ticket=ticket, number=1, status=DeployRun.Status.SUCCEEDED)
    RunHost.objects.create(run=run, host=world.project.hosts.get(), status=RunHost.Status.DONE)
    with pytest.raises(workflow.WorkflowError, match="not kept"):
        workflow.request_rollback(world.users["maintainer"], ticket, release="20200101-000000-1")
