"""The worker's side of a promote: wait, without busy-looping, until a person
lets the rollout's next batch switch or cancels the ticket, or until the
promote timeout.

The run's project lease keeps beating in its own thread meanwhile (see
``releases.lease``), so a waiting run is never taken for a dead one; this only
polls the run's status every ``WALLE_PROMOTE_POLL`` seconds.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.utils.translation import gettext as _

from engine.pipeline import Cancelled

from . import workflow
from .lease import ProjectLease
from .models import DeployRun
from .runlog import RunLog


class PromoteWait:
    """The engine's ``await_promote`` for one run: "" once promoted, else why
    not (cancelled, no promote in time, lock lost), which makes the engine
    switch back the hosts this run switched. A cancel is answered as
    ``Cancelled``, so the console says the run stopped rather than failed."""

    def __init__(self, run: DeployRun, lease: ProjectLease, log: RunLog) -> None:
        self.run = run
        self.lease = lease
        self.log = log

    def __call__(self, number: int, total: int) -> str:
        self.log.flush()  # the console says "waiting" before the ticket does
        workflow.wait_for_promote(self.run, number, total)
        deadline = time.monotonic() + settings.WALLE_PROMOTE_TIMEOUT
        while time.monotonic() < deadline:
            answer = self._answer()
            if answer is not None:
                return answer
            if not self.lease.still_ours():
                return self._give_up(_("the run lost its project lock while it waited for a promote"))
            time.sleep(settings.WALLE_PROMOTE_POLL)
        return self._give_up(_("no promote came within %(seconds)s s") % {"seconds": settings.WALLE_PROMOTE_TIMEOUT})

    def _answer(self) -> str | None:
        """A person's answer: "" once promoted, why not once cancelled (the
        engine then switches back), None while the run still waits."""
        status, error = DeployRun.objects.filter(pk=self.run.pk).values_list("status", "error").first() or ("", "")
        if status == DeployRun.Status.RUNNING:
            return ""
        if status == DeployRun.Status.CANCELLING:
            return Cancelled(error or str(DeployRun.Status.CANCELLED.label))  # "cancelled by alice" (workflow.cancel)
        return None

    def _give_up(self, reason: str) -> str:
        # A promote or a cancel pressed at the last moment wins over the
        # timeout; a run ended meanwhile (its lock released) goes no further.
        if workflow.stop_waiting(self.run, reason):
            return reason
        answer = self._answer()
        return reason if answer is None else answer
