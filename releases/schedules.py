"""Recurring background jobs, registered idempotently at first run."""

from __future__ import annotations

from django_q.models import Schedule

REAPER = "walle: fail runs whose worker died"


def ensure_schedules() -> None:
    Schedule.objects.update_or_create(
        name=REAPER,
        defaults={"func": "releases.tasks.reap_stale_runs", "schedule_type": Schedule.MINUTES, "minutes": 1,
                  "repeats": -1},
    )
