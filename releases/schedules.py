"""Recurring background jobs, registered idempotently at first run."""

from __future__ import annotations

from django_q.models import Schedule

REAPER = "walle: fail runs whose worker died"
SCHEDULED_DEPLOYS = "walle: start scheduled deploys whose time has come"
LOG_RETENTION = "walle: remove console logs older than WALLE_LOG_RETENTION_DAYS"


def ensure_schedules() -> None:
    Schedule.objects.update_or_create(
        name=REAPER,
        defaults={"func": "releases.tasks.reap_stale_runs", "schedule_type": Schedule.MINUTES, "minutes": 1,
                  "repeats": -1},
    )
    Schedule.objects.update_or_create(
        name=SCHEDULED_DEPLOYS,
        defaults={"func": "releases.tasks.run_scheduled_deploys", "schedule_type": Schedule.MINUTES, "minutes": 1,
                  "repeats": -1},
    )
    Schedule.objects.update_or_create(
        name=LOG_RETENTION,
        defaults={"func": "releases.retention.prune_logs", "schedule_type": Schedule.DAILY, "repeats": -1},
    )
