"""The project lock, held by one run at a time as a lease.

A run takes its project's lock (a ``ProjectLock`` row: owner, heartbeat,
lease), keeps it alive while the engine works, asks "is it still ours?" right
before the first webroot switch, and gives it back at the end. A lock whose
heartbeat is older than its lease belongs to a dead worker and is taken over;
the takeover ends the dead run (through the workflow) and is recorded on both
tickets. A Maintainer may also free a stuck project (``workflow.release_lock``).

``ProjectLease`` is the one object that does all of it; the task uses it as a
context manager::

    try:
        with ProjectLease(run, owner) as lease:   # takes the lock, or raises LeaseRefused
            ...                # heartbeat thread runs; lease.still_ours() is the engine's switch gate
    except LeaseRefused as refused:
        ...                    # refused.note says who holds the project
"""

from __future__ import annotations

import logging
import threading

from django.conf import settings
from django.db import IntegrityError, close_old_connections, connection, transaction
from django.utils import timezone
from django.utils.translation import gettext

from . import workflow
from .models import DeployRun, ProjectLock

logger = logging.getLogger(__name__)


class LeaseRefused(Exception):
    """Another live run holds the project."""

    def __init__(self, note: str) -> None:
        super().__init__(note)
        self.note = note


class ProjectLease:
    """The lock of ``run``'s project, held by ``owner`` (host:pid:thread)."""

    def __init__(self, run: DeployRun, owner: str) -> None:
        self.run = run
        self.owner = owner
        self.lost = threading.Event()
        self.note = ""  # set when acquiring took over a dead run's lock
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    # -- taking it -----------------------------------------------------------

    def acquire(self) -> tuple[bool, str]:
        """Take the lock. Returns (taken, note); the note says why not, or
        that a dead run's lock was taken over."""
        project = self.run.ticket.project
        now = timezone.now()
        try:
            with transaction.atomic():
                ProjectLock.objects.create(
                    project=project, run=self.run, owner=self.owner, acquired_at=now, heartbeat_at=now,
                    lease_seconds=settings.WALLE_LOCK_LEASE,
                )
            return True, ""
        except IntegrityError:
            pass
        lock = ProjectLock.objects.select_related("run__ticket").filter(project=project).first()
        if lock is None:  # released between the insert and the look
            return self.acquire()
        if not lock.is_expired(now):
            return False, gettext("Project is locked by run %(run)s of ticket #%(ticket)s.") % {
                "run": lock.run.number, "ticket": lock.run.ticket_id,
            }
        return self._take_over(lock, now)

    def _take_over(self, lock: ProjectLock, now) -> tuple[bool, str]:
        dead = lock.run
        with transaction.atomic():
            taken = ProjectLock.objects.filter(pk=lock.pk, heartbeat_at=lock.heartbeat_at).update(
                run=self.run, owner=self.owner, acquired_at=now, heartbeat_at=now
            )
            if not taken:
                return False, gettext("Another worker took the lock first.")
            note = gettext("lock taken over from run %(run)s of ticket #%(ticket)s (lease expired)") % {
                "run": dead.number, "ticket": dead.ticket_id,
            }
            workflow.lock_taken_over(dead, self.run, note)
        return True, note

    # -- keeping it ----------------------------------------------------------

    def renew(self) -> bool:
        """Move the heartbeat to now; False once the lock is not ours any more."""
        if not ProjectLock.objects.filter(run=self.run).update(heartbeat_at=timezone.now()):
            self.lost.set()
        return not self.lost.is_set()

    def still_ours(self) -> bool:
        """The engine's switch gate: renew now; False if the lock is gone
        (released by a Maintainer, taken over after a stall)."""
        return self.renew()

    def _heartbeat(self) -> None:
        try:
            while not self._stop.wait(settings.WALLE_LOCK_HEARTBEAT):
                try:
                    self.renew()
                except Exception:  # a busy database must not end the heartbeat; try again next beat
                    logger.warning("heartbeat of run %s failed", self.run.pk, exc_info=True)
                    close_old_connections()
        finally:
            connection.close()

    # -- giving it back ------------------------------------------------------

    def release(self) -> None:
        """Give the lock back (only if it is still this run's)."""
        ProjectLock.objects.filter(run=self.run).delete()

    def __enter__(self) -> ProjectLease:
        taken, self.note = self.acquire()
        if not taken:
            raise LeaseRefused(self.note)
        self._beat = threading.Thread(target=self._heartbeat, name=f"walle-lease-{self.run.pk}", daemon=True)
        self._beat.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join(timeout=30)
        self.release()
