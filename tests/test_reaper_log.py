"""A run whose worker died says so at the end of its console, with what that
means for the hosts, and the reaper hands back the runs it ended."""

from __future__ import annotations

from datetime import timedelta

from django.urls import reverse
from django.utils import timezone

from releases import workflow
from releases.lease import ProjectLease
from releases.models import DeployRun, LogLine, ProjectLock, RunHost, Ticket

from . import helpers

S = Ticket.Status


def dead_run(world, lines: int = 3) -> DeployRun:
    """A running run whose worker stopped renewing its lock an hour ago."""
    ticket = helpers.make_ticket(world.project, world.users["developer"], S.QUEUED)
    run = workflow.start_run(DeployRun.objects.create(ticket=ticket, number=1).pk, "worker-a")
    ProjectLease(run, "worker-a").acquire()
    ProjectLock.objects.filter(run=run).update(heartbeat_at=timezone.now() - timedelta(hours=1))
    for seq in range(1, lines + 1):
        LogLine.objects.create(run=run, seq=seq, host="", stage="pre_release", stream="stdout", text=f"{seq}")
    return run


def test_the_reaper_returns_the_runs_it_ended_and_ends_their_consoles(world):
    run = dead_run(world)
    assert workflow.reap_all_stale_runs() == [run]
    assert workflow.reap_all_stale_runs() == []  # ended once
    last = run.log_lines.order_by("-seq").first()
    assert (last.seq, last.stage, last.stream) == (4, "finish", "error")
    assert "worker stopped responding" in last.text and "interrupted" in last.text.lower()
    assert "No host had switched" in last.text
    assert run.log_lines.filter(text__contains="stopped responding").count() == 1
    run.refresh_from_db()
    assert run.status == DeployRun.Status.FAILED and Ticket.objects.get(pk=run.ticket_id).status == S.FAILED


def test_the_interrupted_line_names_the_hosts_that_serve_the_new_release(world):
    second = helpers.make_host()
    world.project.hosts.add(second)
    run = dead_run(world)
    first = world.project.hosts.exclude(pk=second.pk).get()
    RunHost.objects.create(run=run, host=first, status=RunHost.Status.SWITCHED)
    RunHost.objects.create(run=run, host=second, status=RunHost.Status.PREPARED)
    assert workflow.reap_stale_runs(world.project) == [run]
    text = run.log_lines.order_by("-seq").first().text
    assert f'"switched" ({first.endpoint})' in text and second.endpoint not in text
    assert "others still serve what they served before" in text


def test_a_lock_taken_over_from_a_dead_run_ends_its_console_too(world):
    dead = dead_run(world)
    other = helpers.make_ticket(world.project, world.users["developer"], S.QUEUED)
    nxt = workflow.start_run(DeployRun.objects.create(ticket=other, number=1).pk, "worker-b")
    taken, _ = ProjectLease(nxt, "worker-b").acquire()
    assert taken
    assert "stopped responding" in dead.log_lines.order_by("-seq").first().text


def test_a_lost_queued_run_says_nothing_ran(world, django_capture_on_commit_callbacks):
    ticket = helpers.make_ticket(world.project, world.users["developer"], S.APPROVED)
    with django_capture_on_commit_callbacks(execute=False):
        run = workflow.deploy(world.users["developer"], ticket)
    DeployRun.objects.filter(pk=run.pk).update(created_at=timezone.now() - timedelta(days=1))
    assert workflow.reap_all_stale_runs() == [run]
    line = run.log_lines.get()
    assert (line.stage, line.stream) == ("finish", "error") and "no host changed" in line.text


def test_the_console_shows_the_interruption(client, world):
    run = dead_run(world)
    workflow.reap_all_stale_runs()
    client.force_login(world.users["reporter"])
    page = client.get(reverse("ticket_detail", args=[run.ticket_id])).content.decode()
    assert "the worker stopped responding" in page
