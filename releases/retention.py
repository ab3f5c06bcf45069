"""Log retention: remove the console logs of runs that ended long ago.

A run stores up to WALLE_LOG_MAX_LINES console lines, so logs are what grows
without bound; the audit trail is small and is what an incident review needs.
So only ``LogLine`` rows go: tickets, ticket events, runs (with their error
summary and timings), per-host results and releases are kept. Each pruned run
keeps one line saying its log was removed and why, so its page does not just
look empty.

Runs daily as a django-q2 schedule (``releases.schedules``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, Max, OuterRef
from django.utils import timezone

from engine.plan import Stage, Stream

from .models import DeployRun, LogLine

logger = logging.getLogger(__name__)

PRUNED_PREFIX = "Log removed:"
ENDED = [DeployRun.Status.SUCCEEDED, DeployRun.Status.FAILED, DeployRun.Status.CANCELLED]
# Runs per transaction: each holds at most WALLE_LOG_MAX_LINES lines, so a batch
# stays a bounded delete even on a database with years of history.
BATCH_RUNS = 20


@dataclass(frozen=True)
class Pruned:
    runs: int
    lines: int

    def __str__(self) -> str:
        return f"removed {self.lines} log lines of {self.runs} runs"


def cutoff(days: int, now: datetime | None = None) -> datetime:
    return (now or timezone.now()) - timedelta(days=days)


def runs_to_prune(before: datetime):
    """Ended runs that still have log lines other than the removal notice."""
    lines = LogLine.objects.filter(run=OuterRef("pk"))
    notice = lines.filter(stage=Stage.FINISH, stream=Stream.INFO, text__startswith=PRUNED_PREFIX)
    return (
        DeployRun.objects.filter(status__in=ENDED, finished_at__lt=before)
        .filter(Exists(lines), ~Exists(notice))
        .values_list("pk", flat=True).order_by("pk")
    )


def _prune_batch(run_ids: list[int], days: int, today: str) -> int:
    with transaction.atomic():
        # The notice goes after the last line, so readers asking for lines
        # "after seq N" still see it and sequence numbers never repeat.
        last = dict(
            LogLine.objects.filter(run_id__in=run_ids).values_list("run_id").annotate(Max("seq")).order_by()
        )
        deleted, _ = LogLine.objects.filter(run_id__in=run_ids).delete()
        LogLine.objects.bulk_create([
            LogLine(run_id=run_id, seq=last.get(run_id, 0) + 1, stage=Stage.FINISH, stream=Stream.INFO,
                    text=f"{PRUNED_PREFIX} this run ended more than {days} days ago and its console log was "
                         f"removed on {today} (WALLE_LOG_RETENTION_DAYS).")
            for run_id in run_ids
        ])
    return deleted


def prune_logs(days: int | None = None, now: datetime | None = None) -> str:
    """django-q2 schedule: remove console logs of runs that ended more than
    ``days`` (WALLE_LOG_RETENTION_DAYS) days ago; 0 keeps everything."""
    days = settings.WALLE_LOG_RETENTION_DAYS if days is None else days
    if days <= 0:
        return "log retention is off (WALLE_LOG_RETENTION_DAYS=0)"
    before = cutoff(days, now)
    today = (now or timezone.now()).date().isoformat()
    runs = lines = 0
    while batch := list(runs_to_prune(before)[:BATCH_RUNS]):
        lines += _prune_batch(batch, days, today)
        runs += len(batch)
    result = Pruned(runs, lines)
    logger.info("log retention: %s", result)
    return str(result)
