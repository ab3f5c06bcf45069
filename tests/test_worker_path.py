"""The worker's path, piece by piece: the run mover, the project lease, the
recorder (the one writer of what a run did)."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import Role, Team
from engine.plan import HostResult, HostState
from projects.forms import deploy_key_choices, team_choices
from releases import workflow
from releases.lease import LeaseRefused, ProjectLease
from releases.models import DeployRun, ProjectLock, Release, RunHost, Ticket
from releases.recorder import Recorder

from . import helpers

S = Ticket.Status
R = DeployRun.Status


def _queued(world) -> DeployRun:
    ticket = helpers.make_ticket(world.project, world.users["developer"], S.QUEUED)
    return DeployRun.objects.create(ticket=ticket, number=1)


def test_a_run_moves_only_along_its_table(world):
    run = _queued(world)
    assert workflow.start_run(run.pk, "w") is not None
    assert workflow.start_run(run.pk, "w") is None  # delivered twice: claimed once
    assert workflow.finish_run(run, ok=True) is True
    assert workflow.finish_run(run, ok=False) is False  # an ended run stays as it ended
    run.refresh_from_db()
    assert run.status == R.SUCCEEDED
    with pytest.raises(KeyError):
        workflow._move_run(run, "resurrect")


@pytest.mark.django_db(transaction=True)
def test_the_lease_beats_answers_still_ours_and_lets_go_on_exit(world, settings):
    settings.WALLE_LOCK_HEARTBEAT = 0.1
    run = workflow.start_run(_queued(world).pk, "w")
    with ProjectLease(run, "worker-a") as lease:
        first = ProjectLock.objects.get(run=run).heartbeat_at
        time.sleep(0.5)
        assert ProjectLock.objects.get(run=run).heartbeat_at > first  # the heartbeat thread renews it
        assert lease.still_ours()
        workflow.release_lock(world.users["maintainer"], world.project)  # a Maintainer frees the project
        assert not lease.still_ours()
    assert not ProjectLock.objects.exists()


def test_a_held_project_refuses_a_second_lease_and_an_expired_one_is_taken_over(world):
    holder = workflow.start_run(_queued(world).pk, "w")
    ProjectLease(holder, "worker-a").acquire()
    other_ticket = helpers.make_ticket(world.project, world.users["developer"], S.QUEUED)
    other = DeployRun.objects.create(ticket=other_ticket, number=1, status=R.RUNNING)
    with pytest.raises(LeaseRefused, match="locked by run"):
        with ProjectLease(other, "worker-b"):
            pass
    ProjectLock.objects.filter(run=holder).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    lease = ProjectLease(other, "worker-b")
    taken, note = lease.acquire()
    assert taken and "taken over" in note
    holder.refresh_from_db()
    assert holder.status == R.FAILED  # the dead run was ended through the workflow


def test_the_recorder_marks_removed_only_what_the_engine_removed(world):
    run = workflow.start_run(_queued(world).pk, "w")
    host = world.project.hosts.first()
    for name in ("20240101-000000-1", "20240102-000000-2"):
        Release.objects.create(project=world.project, host=host, name=name, commit="a" * 40, ticket=run.ticket)
    recorder = Recorder(run)
    recorder.started([host])
    # The engine tried to remove both, but only the first rm worked.
    recorder.host(HostResult(host.pk, host.endpoint, HostState.DONE, removed=["20240101-000000-1"]))
    kept = set(Release.objects.filter(removed_at__isnull=True).values_list("name", flat=True))
    assert kept == {"20240102-000000-2"}
    assert RunHost.objects.get(run=run).status == RunHost.Status.DONE


def test_the_recorder_writes_the_commit_the_engine_resolved_on_the_run_and_its_releases(world):
    run = workflow.start_run(_queued(world).pk, "w")
    host = world.project.hosts.first()
    recorder = Recorder(run)
    recorder.started([host])
    recorder.planned("20240103-000000-3")
    recorder.resolved("b" * 40)
    recorder.host(HostResult(host.pk, host.endpoint, HostState.PREPARED))
    run.refresh_from_db()
    assert run.commit == "b" * 40 and run.release_name == "20240103-000000-3"
    assert Release.objects.get(name="20240103-000000-3").commit == "b" * 40


def test_project_form_choices_cost_the_same_queries_for_few_or_many_groups(world):
    maintainer = world.users["owner"]  # an Owner may move the project to the groups he maintains
    with CaptureQueriesContext(connection) as few:
        list(team_choices(maintainer, world.project)), list(deploy_key_choices(maintainer, world.project))
    for n in range(30):
        team = Team.objects.create(name=f"g{n}")
        helpers.add_member(maintainer, team, Role.MAINTAINER)
    with CaptureQueriesContext(connection) as many:
        teams = list(team_choices(maintainer, world.project))
        list(deploy_key_choices(maintainer, world.project))
    assert len(teams) == 31
    assert len(many.captured_queries) == len(few.captured_queries)


def test_a_failing_key_file_sweep_is_logged_and_never_stops_the_task(monkeypatch, caplog):
    """The sweep run_deploy does first is housekeeping: an error there must not
    end the task before it claims its run (the run would sit queued)."""
    from releases import tasks

    def broken(**_kwargs):
        raise PermissionError("key root unreadable")

    monkeypatch.setattr(tasks, "remove_stale_key_files", broken)
    with caplog.at_level("ERROR", logger="releases.tasks"):
        assert tasks.remove_dead_workers_files() == []
    assert "sweeping dead workers' key files failed" in caplog.text
