"""Store what the engine reports: per-host run state, release dirs, what is live."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from engine.plan import HostResult, HostState, Outcome

from .models import DeployRun, Release, RunHost

# Engine host states after which the new release dir exists / is served.
_ON_DISK = (HostState.PREPARED, HostState.SWITCHED, HostState.DONE)
_LIVE = (HostState.SWITCHED, HostState.DONE)


def record(run: DeployRun, outcome: Outcome) -> None:
    """Store the final per-host results, the commit, and what keep-N removed."""
    now = timezone.now()
    with transaction.atomic():
        for result in outcome.hosts:
            record_host(run, result, outcome.release_name, outcome.commit)
        if outcome.commit:
            DeployRun.objects.filter(pk=run.pk).update(commit=outcome.commit)
            Release.objects.filter(run=run).update(commit=outcome.commit)
        for result in outcome.hosts:
            _mark_removed(run.ticket.project, result, now)


def record_host(run: DeployRun, result: HostResult, release_name: str, commit: str) -> None:
    """Store one host's result and which release it serves (called live, as
    each host changes state, and once more at the end)."""
    ticket = run.ticket
    RunHost.objects.filter(run=run, host_id=result.target_id).update(
        status=RunHost.Status(result.state.value), release=result.release,
        previous_release=result.previous_release, error=result.error, duration=result.duration,
    )
    if not ticket.is_rollback and release_name:
        _record_release_dir(run, result, release_name, commit)
    if result.state in _LIVE and result.release:
        _mark_live(ticket.project, result.target_id, result.release, timezone.now())


def _record_release_dir(run: DeployRun, result: HostResult, name: str, commit: str) -> None:
    """A deploy's new release dir now exists on the host, or was removed again."""
    ticket = run.ticket
    if result.state in _ON_DISK:
        Release.objects.get_or_create(
            project=ticket.project, host_id=result.target_id, name=name,
            defaults={"commit": commit, "ticket": ticket, "run": run},
        )
    elif result.state == HostState.CLEANED:
        Release.objects.filter(project=ticket.project, host_id=result.target_id, name=name).update(
            removed_at=timezone.now()
        )


def _mark_removed(project, result: HostResult, now) -> None:
    """Record the release dirs the engine reports it actually removed from the
    host (keep-N and orphans); a failed removal stays recorded as present."""
    if result.removed:
        Release.objects.filter(project=project, host_id=result.target_id, name__in=result.removed).update(
            removed_at=now, is_live=False
        )


def _mark_live(project, host_id: int, name: str, now) -> None:
    Release.objects.filter(project=project, host_id=host_id, is_live=True).exclude(name=name).update(is_live=False)
    Release.objects.filter(project=project, host_id=host_id, name=name).update(is_live=True, switched_at=now)
