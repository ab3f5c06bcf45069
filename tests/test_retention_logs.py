"""Console logs of runs that ended more than WALLE_LOG_RETENTION_DAYS ago are
removed daily; the audit trail (tickets, events, runs, releases) is kept."""

from __future__ import annotations

import pydoc
from datetime import timedelta

from django.utils import timezone
from django_q.models import Schedule

from releases import retention
from releases.models import DeployRun, LogLine, Release, RunHost, Ticket, TicketEvent
from releases.schedules import LOG_RETENTION, REAPER, ensure_schedules

from . import helpers

S = Ticket.Status
R = DeployRun.Status


def run_with_log(world, *, ended_days_ago: float | None, status: str = R.SUCCEEDED, lines: int = 3) -> DeployRun:
    ticket = helpers.make_ticket(world.project, world.users["developer"], S.SUCCEEDED)
    ended = None if ended_days_ago is None else timezone.now() - timedelta(days=ended_days_ago)
    run = DeployRun.objects.create(ticket=ticket, number=1, status=status, started_at=ended, finished_at=ended)
    LogLine.objects.bulk_create(
        LogLine(run=run, seq=seq, stage="transfer", stream="stdout", text=f"line {seq}") for seq in range(1, lines + 1)
    )
    return run


def texts(run: DeployRun) -> list[str]:
    return list(run.log_lines.order_by("seq").values_list("text", flat=True))


def test_logs_of_runs_that_ended_before_the_cutoff_are_removed_with_a_notice(world, settings):
    settings.WALLE_LOG_RETENTION_DAYS = 180
    old = run_with_log(world, ended_days_ago=181, lines=5)
    recent = run_with_log(world, ended_days_ago=179)
    result = retention.prune_logs()
    assert result == "removed 5 log lines of 1 runs"
    assert texts(recent) == ["line 1", "line 2", "line 3"]
    (notice,) = old.log_lines.all()
    assert notice.seq == 6  # after the last line: incremental readers still see it
    assert (notice.stage, notice.stream) == ("finish", "info")
    assert notice.text.startswith(retention.PRUNED_PREFIX) and "180 days" in notice.text


def test_failed_and_cancelled_runs_are_pruned_but_live_ones_never(world):
    failed = run_with_log(world, ended_days_ago=400, status=R.FAILED)
    cancelled = run_with_log(world, ended_days_ago=400, status=R.CANCELLED)
    # A run still running (or queued) has not ended, however old it is.
    running = run_with_log(world, ended_days_ago=None, status=R.RUNNING)
    DeployRun.objects.filter(pk=running.pk).update(created_at=timezone.now() - timedelta(days=400))
    retention.prune_logs(days=30)
    assert len(texts(failed)) == len(texts(cancelled)) == 1
    assert texts(running) == ["line 1", "line 2", "line 3"]


def test_the_audit_trail_is_kept(world):
    run = run_with_log(world, ended_days_ago=365)
    host = world.project.hosts.get()
    RunHost.objects.create(run=run, host=host, status=RunHost.Status.DONE, release="20240101-000000-1")
    Release.objects.create(project=world.project, host=host, name="20240101-000000-1", commit="a" * 40,
                           ticket=run.ticket, run=run, is_live=True)
    counts = [m.objects.count() for m in (Ticket, TicketEvent, DeployRun, RunHost, Release)]
    retention.prune_logs(days=180)
    assert [m.objects.count() for m in (Ticket, TicketEvent, DeployRun, RunHost, Release)] == counts
    run.refresh_from_db()
    assert run.status == R.SUCCEEDED and run.finished_at is not None


def test_pruning_again_changes_nothing(world):
    old = run_with_log(world, ended_days_ago=200)
    retention.prune_logs(days=180)
    notice = list(old.log_lines.values_list("pk", "seq", "text"))
    assert retention.prune_logs(days=180) == "removed 0 log lines of 0 runs"
    assert list(old.log_lines.values_list("pk", "seq", "text")) == notice


def test_a_hook_printing_the_notice_text_does_not_shield_a_log(world):
    old = run_with_log(world, ended_days_ago=200)
    LogLine.objects.create(run=old, seq=4, stage="pre_deploy", stream="stdout", text=f"{retention.PRUNED_PREFIX} fake")
    retention.prune_logs(days=180)
    assert old.log_lines.count() == 1


def test_many_runs_are_pruned_in_batches(world, monkeypatch):
    monkeypatch.setattr(retention, "BATCH_RUNS", 2)
    runs = [run_with_log(world, ended_days_ago=300) for _ in range(5)]
    assert retention.prune_logs(days=180) == "removed 15 log lines of 5 runs"
    assert all(r.log_lines.count() == 1 for r in runs)


def test_zero_days_keeps_every_log(world, settings):
    settings.WALLE_LOG_RETENTION_DAYS = 0
    old = run_with_log(world, ended_days_ago=3000)
    assert "off" in retention.prune_logs()
    assert len(texts(old)) == 3


def test_retention_is_a_daily_schedule_next_to_the_reaper(world):
    ensure_schedules()
    ensure_schedules()  # idempotent
    schedule = Schedule.objects.get(name=LOG_RETENTION)
    assert (schedule.schedule_type, schedule.repeats) == (Schedule.DAILY, -1)
    assert Schedule.objects.filter(name=REAPER).count() == 1
    # What the worker will call, resolved the way django-q2 resolves it.
    old = run_with_log(world, ended_days_ago=500)
    assert pydoc.locate(schedule.func)() == "removed 3 log lines of 1 runs"
    assert len(texts(old)) == 1
