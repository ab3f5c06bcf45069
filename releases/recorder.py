"""The one writer of what a run did: its commit, its release name, each
host's result (``RunHost``) and the release dirs on each host (``Release``:
created, live, removed), all from what the engine reports as it happens.

The engine reports a host each time its state changes and once more when the
run ends (with its error, duration and the release dirs it removed), so a
worker that dies half-way still leaves an exact record of what each host
serves, and nothing is ever recomputed from the database.
"""

from __future__ import annotations

from django.utils import timezone

from engine.plan import HostResult, HostState

from .models import DeployRun, Release, RunHost

# Engine host states after which the new release dir exists / is served.
_ON_DISK = (HostState.PREPARED, HostState.SWITCHED, HostState.DONE)
_LIVE = (HostState.SWITCHED, HostState.DONE)


class Recorder:
    """Records one run. ``planned`` and ``resolved`` come before any host report."""

    def __init__(self, run: DeployRun) -> None:
        self.run = run
        self.release_name = ""  # a deploy's new release dir, once planned
        self.commit = run.ticket.commit

    def started(self, hosts) -> None:
        """One pending result row per host the run will touch."""
        RunHost.objects.bulk_create([RunHost(run=self.run, host=host) for host in hosts])

    def planned(self, release_name: str) -> None:
        """The deploy's new release dir name (rollbacks make none)."""
        self.release_name = release_name
        DeployRun.objects.filter(pk=self.run.pk).update(release_name=release_name)

    def resolved(self, commit: str) -> None:
        """The commit the run deploys, as the engine resolved it."""
        self.commit = commit
        DeployRun.objects.filter(pk=self.run.pk).update(commit=commit)

    def host(self, result: HostResult) -> None:
        """Store one host's report: its state, where its webroot points, and
        the release dirs this run created or removed there."""
        run, project = self.run, self.run.ticket.project
        RunHost.objects.filter(run=run, host_id=result.target_id).update(
            status=RunHost.Status(result.state.value), release=result.release,
            previous_release=result.previous_release, error=result.error, duration=result.duration,
        )
        now = timezone.now()
        if self.release_name and not run.ticket.is_rollback:
            self._new_release_dir(result, now)
        if (result.state in _LIVE and result.release) or result.state == HostState.REVERTED:
            # Switched back: live again is what it served before (or nothing, or a foreign dir).
            Release.objects.filter(project=project, host_id=result.target_id, is_live=True).exclude(
                name=result.release
            ).update(is_live=False)
            Release.objects.filter(project=project, host_id=result.target_id, name=result.release).update(
                is_live=True, switched_at=now
            )
        if result.removed:  # only what the engine really removed; a failed rm stays recorded
            Release.objects.filter(
                project=project, host_id=result.target_id, name__in=result.removed, removed_at__isnull=True
            ).update(removed_at=now, is_live=False)

    def _new_release_dir(self, result: HostResult, now) -> None:
        """The deploy's new release dir now exists on the host, or was removed again."""
        ticket = self.run.ticket
        if result.state in _ON_DISK:
            Release.objects.get_or_create(
                project=ticket.project, host_id=result.target_id, name=self.release_name,
                defaults={"commit": self.commit, "ticket": ticket, "run": self.run},
            )
        elif result.state == HostState.CLEANED:
            Release.objects.filter(
                project=ticket.project, host_id=result.target_id, name=self.release_name, removed_at__isnull=True
            ).update(removed_at=now)
