"""Deploy tickets, their audit trail, runs, per-host results, logs and releases.

Status fields are written only by :mod:`releases.workflow`; everything here is
data, constraints and read helpers.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from projects.models import Host, Project, RepoMode, RolloutStrategy


class Ticket(models.Model):
    """A deploy ticket (上线单) or a rollback ticket."""

    project_path = "project"  # how it belongs to a project (accounts.permissions)

    class Kind(models.TextChoices):
        DEPLOY = "deploy", _("Deploy")
        ROLLBACK = "rollback", _("Rollback")

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending approval")
        APPROVED = "approved", _("Approved")
        REJECTED = "rejected", _("Rejected")
        QUEUED = "queued", _("Queued")
        DEPLOYING = "deploying", _("Deploying")
        # A rollout's batch switched and passed its gate; the next one waits
        # for someone to press Promote (or for the promote timeout).
        WAITING = "waiting", _("Waiting for promote")
        # Cancelled while it waited: the worker stops the rollout and switches
        # back the hosts this run switched, then the ticket is cancelled.
        CANCELLING = "cancelling", _("Cancelling")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")
        CANCELLED = "cancelled", _("Cancelled")

    ACTIVE_STATUSES = (Status.QUEUED, Status.DEPLOYING, Status.WAITING, Status.CANCELLING)
    FINAL_STATUSES = (Status.SUCCEEDED, Status.CANCELLED)

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="tickets", verbose_name=_("project"))
    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices, default=Kind.DEPLOY)
    title = models.CharField(_("title"), max_length=200)
    description = models.TextField(_("description"), blank=True)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="tickets", verbose_name=_("author"))
    status = models.CharField(_("status"), max_length=12, choices=Status.choices, default=Status.PENDING)
    ref_kind = models.CharField(_("ref kind"), max_length=10, choices=RepoMode.choices, default=RepoMode.BRANCH)
    ref = models.CharField(_("branch or tag"), max_length=255)
    commit = models.CharField(_("commit"), max_length=40, blank=True)
    hosts = models.ManyToManyField(Host, related_name="tickets", verbose_name=_("hosts"))
    # For rollbacks: the ticket being undone, and optionally a named release.
    rollback_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="rollbacks", verbose_name=_("rollback of")
    )
    rollback_release = models.CharField(_("release to restore"), max_length=64, blank=True)
    # "" = the project's rollout; else a more careful one the author picked.
    rollout_strategy = models.CharField(
        _("rollout"), max_length=12, choices=RolloutStrategy.choices, blank=True, default="",
    )
    reject_reason = models.TextField(_("reject reason"), blank=True)
    # Bumped by every edit (workflow.edit). An approval names the version its
    # approver reviewed, so content changed meanwhile is never approved unseen.
    version = models.PositiveIntegerField(_("version"), default=1)
    # A scheduled deploy (workflow.schedule): run at scheduled_at as
    # scheduled_by, only if the ticket is still the version scheduled.
    scheduled_at = models.DateTimeField(_("scheduled for"), null=True, blank=True)
    scheduled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", verbose_name=_("scheduled by")
    )
    scheduled_version = models.PositiveIntegerField(_("scheduled version"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("ticket")
        verbose_name_plural = _("tickets")
        indexes = [
            models.Index(fields=["project", "status"], name="ticket_project_status"),
            models.Index(fields=["status", "-created_at"], name="ticket_status_created"),
            models.Index(fields=["author", "-created_at"], name="ticket_author_created"),
            models.Index(fields=["scheduled_at"], name="ticket_scheduled_at"),
            # The ticket lists' order: without it every page sorts all visible tickets.
            models.Index(fields=["-created_at", "-id"], name="ticket_created"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.title}"

    @staticmethod
    def default_title(ref: str, commit: str) -> str:
        """The title of a ticket whose author gave none: what it deploys."""
        return f"{ref} {commit[:7]}"

    @property
    def approvals_required(self) -> int:
        """How many distinct people must approve a version of this ticket: the
        environment's N, for deploys and (where they need approval) rollbacks."""
        return self.project.environment.approvals_required

    @property
    def is_rollback(self) -> bool:
        return self.kind == self.Kind.ROLLBACK

    @property
    def is_waiting(self) -> bool:
        """Its rollout waits for a promote (the policy asks: a cancel now switches hosts back)."""
        return self.status == self.Status.WAITING

    def latest_run(self) -> DeployRun | None:
        return self.runs.order_by("-number").first()


class TicketAction(models.TextChoices):
    """What a TicketEvent records, and how it reads on the timeline and in the
    audit log. The moves are the workflow's transition names (its TRANSITIONS
    table); add a new move here. The stored values never change."""

    SUBMIT = "submit", _("submitted")
    RESUBMIT = "resubmit", _("resubmitted")
    RESUBMIT_APPROVED = "resubmit_approved", _("resubmitted (no approval needed)")
    REOPEN = "reopen", _("edited, needs approval again")
    APPROVE = "approve", _("approved")
    # An approval that leaves the ticket pending (more approvals needed); the
    # one that completes it is APPROVE.
    APPROVE_PARTIAL = "approve_partial", _("Approved, more approvals needed")
    REJECT = "reject", _("rejected")
    CANCEL = "cancel", _("cancelled")
    DEPLOY = "deploy", _("deploy queued")
    START = "start", _("deploy started")
    SUCCEED = "succeed", _("succeeded")
    FAIL = "fail", _("failed")
    EDIT = "edit", _("edited")
    LOCK_TAKEN_OVER = "lock_taken_over", _("lock taken over")
    RELEASE_LOCK = "release_lock", _("lock released")
    RETRY = "retry", _("retry queued")
    WAIT = "wait", _("waiting for promote")
    PROMOTE = "promote", _("promoted")
    RESUME = "resume", _("rollout resumed")
    SWITCH_BACK = "switch_back", _("hosts switched back")
    # Deploy windows and scheduled deploys.
    WINDOW_OVERRIDE = "window_override", _("Deployed outside the deploy window")
    SCHEDULE = "schedule", _("Scheduled")
    UNSCHEDULE = "unschedule", _("Unscheduled")
    SCHEDULE_REFUSED = "schedule_refused", _("Scheduled deploy refused")


def event_action_label(action: str) -> str:
    """A ticket event's action for people; an unknown one as written."""
    return TicketAction(action).label if action in TicketAction.values else action


class TicketEvent(models.Model):
    """Append-only audit row for every change to a ticket."""

    project_path = "ticket__project"  # how it belongs to a project (accounts.permissions)

    Action = TicketAction

    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="events", verbose_name=_("ticket"))
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", verbose_name=_("actor")
    )
    action = models.CharField(_("action"), max_length=30, choices=Action.choices)
    from_status = models.CharField(_("from status"), max_length=12, choices=Ticket.Status.choices, blank=True)
    to_status = models.CharField(_("to status"), max_length=12, choices=Ticket.Status.choices, blank=True)
    note = models.TextField(_("note"), blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name = _("ticket event")
        verbose_name_plural = _("ticket events")

    def __str__(self) -> str:
        moved = f"{self.get_from_status_display() or '-'} -> {self.get_to_status_display() or '-'}"
        return f"{self.get_action_display()}: {moved}"


class Approval(models.Model):
    """One person's approval of one version of a ticket, written only by
    ``workflow.approve``. An edit makes a new version, so approvals of earlier
    versions stop counting; they stay here as history."""

    project_path = "ticket__project"  # how it belongs to a project (accounts.permissions)

    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="approvals", verbose_name=_("ticket"))
    approver = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+",
                                 verbose_name=_("approver"))
    version = models.PositiveIntegerField(_("version approved"))
    created_at = models.DateTimeField(_("approved at"), auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name = _("approval")
        verbose_name_plural = _("approvals")
        constraints = [
            # The database, not only the workflow, keeps one approval per person per version.
            models.UniqueConstraint(fields=["ticket", "version", "approver"], name="approval_once_per_version"),
        ]

    def __str__(self) -> str:
        return f"#{self.ticket_id} v{self.version} approved by {self.approver}"


class RunStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    WAITING = "waiting", _("Waiting for promote")
    CANCELLING = "cancelling", _("Cancelling")  # cancelled while waiting; the worker switches back
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")
    CANCELLED = "cancelled", _("Cancelled")


ACTIVE_RUN_STATUSES = [RunStatus.QUEUED.value, RunStatus.RUNNING.value, RunStatus.WAITING.value,
                       RunStatus.CANCELLING.value]
# A worker is at work on the run (it holds the project's lease).
WORKING_RUN_STATUSES = [RunStatus.RUNNING.value, RunStatus.WAITING.value, RunStatus.CANCELLING.value]


class DeployRun(models.Model):
    """One execution of a ticket by the worker. A failed ticket may run again."""

    project_path = "ticket__project"  # how it belongs to a project (accounts.permissions)

    Status = RunStatus
    ACTIVE_STATUSES = ACTIVE_RUN_STATUSES
    WORKING_STATUSES = WORKING_RUN_STATUSES

    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="runs", verbose_name=_("ticket"))
    number = models.PositiveIntegerField(_("number"))
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.QUEUED)
    triggered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+", verbose_name=_("triggered by")
    )
    release_name = models.CharField(_("release name"), max_length=64, blank=True)
    commit = models.CharField(_("commit"), max_length=40, blank=True)
    stage = models.CharField(_("stage"), max_length=20, blank=True)
    error = models.TextField(_("error"), blank=True)
    worker = models.CharField(_("worker"), max_length=200, blank=True)
    failed_batch = models.CharField(_("failed batch"), max_length=16, blank=True)  # "2/3": the rollout batch that failed
    # A retry: the failed run whose release (name and prepared copies) it reuses.
    resumes = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                verbose_name=_("resumes"))
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        ordering = ["ticket", "number"]
        verbose_name = _("deploy run")
        verbose_name_plural = _("deploy runs")
        constraints = [
            models.UniqueConstraint(fields=["ticket", "number"], name="run_unique_number"),
            # At most one live run per ticket, enforced by the database.
            models.UniqueConstraint(
                fields=["ticket"], condition=models.Q(status__in=ACTIVE_RUN_STATUSES),
                name="run_one_active_per_ticket",
            ),
        ]
        indexes = [models.Index(fields=["status"], name="run_status")]

    def __str__(self) -> str:
        return gettext("run %(run)s of ticket #%(ticket)s") % {"run": self.number, "ticket": self.ticket_id}

    @property
    def duration(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


class RunHost(models.Model):
    """The result of one run on one host."""

    project_path = "run__ticket__project"  # how it belongs to a project (accounts.permissions)

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        PREPARED = "prepared", _("Prepared")
        SWITCHED = "switched", _("Switched")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")
        CLEANED = "cleaned", _("Failed, cleaned up")
        REVERTED = "reverted", _("Switched back")

    # The host's webroot points at this run's release.
    LIVE_STATUSES = (Status.SWITCHED, Status.DONE)

    run = models.ForeignKey(DeployRun, on_delete=models.CASCADE, related_name="host_results", verbose_name=_("run"))
    host = models.ForeignKey(Host, on_delete=models.PROTECT, related_name="run_results", verbose_name=_("host"))
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.PENDING)
    release = models.CharField(_("release"), max_length=64, blank=True)
    previous_release = models.CharField(_("previous release"), max_length=64, blank=True)
    error = models.TextField(_("error"), blank=True)
    duration = models.FloatField(_("duration (seconds)"), null=True, blank=True)

    class Meta:
        ordering = ["run", "host__address", "host__port"]
        verbose_name = _("run host")
        verbose_name_plural = _("run hosts")
        constraints = [models.UniqueConstraint(fields=["run", "host"], name="runhost_unique")]

    def __str__(self) -> str:
        return gettext("%(host)s in run %(run)s: %(status)s") % {
            "host": self.host, "run": self.run_id, "status": self.get_status_display(),
        }


class LogLine(models.Model):
    """One line of a run's console, in order. Kept for every run (never wiped)."""

    project_path = "run__ticket__project"  # how it belongs to a project (accounts.permissions)

    run = models.ForeignKey(DeployRun, on_delete=models.CASCADE, related_name="log_lines", verbose_name=_("run"))
    seq = models.PositiveIntegerField(_("sequence"))
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    host = models.CharField(_("host"), max_length=300, blank=True)  # "" = the deploy host
    stage = models.CharField(_("stage"), max_length=20)
    stream = models.CharField(_("stream"), max_length=10)
    text = models.TextField(_("text"))

    class Meta:
        ordering = ["run", "seq"]
        verbose_name = _("log line")
        verbose_name_plural = _("log lines")
        constraints = [models.UniqueConstraint(fields=["run", "seq"], name="logline_unique_seq")]

    def __str__(self) -> str:
        return f"[{self.stage}] {self.host or gettext('deploy host')}: {self.text[:80]}"


class Release(models.Model):
    """A release directory on one host: which commit and ticket it holds."""

    project_path = "project"  # how it belongs to a project (accounts.permissions)

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="releases", verbose_name=_("project"))
    host = models.ForeignKey(Host, on_delete=models.CASCADE, related_name="releases", verbose_name=_("host"))
    name = models.CharField(_("name"), max_length=64)
    commit = models.CharField(_("commit"), max_length=40)
    ticket = models.ForeignKey(Ticket, on_delete=models.PROTECT, related_name="releases", verbose_name=_("ticket"))
    run = models.ForeignKey(DeployRun, on_delete=models.SET_NULL, null=True, related_name="releases", verbose_name=_("run"))
    is_live = models.BooleanField(_("live"), default=False)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    switched_at = models.DateTimeField(_("switched at"), null=True, blank=True)
    removed_at = models.DateTimeField(_("removed at"), null=True, blank=True)

    class Meta:
        ordering = ["-name"]
        verbose_name = _("release")
        verbose_name_plural = _("releases")
        constraints = [
            models.UniqueConstraint(fields=["project", "host", "name"], name="release_unique_name"),
            models.UniqueConstraint(
                fields=["project", "host"], condition=models.Q(is_live=True), name="release_one_live_per_host"
            ),
        ]

    def __str__(self) -> str:
        return gettext("%(release)s on %(host)s") % {"release": self.name, "host": self.host}


class ProjectLock(models.Model):
    """At most one run per project at a time; leased so a dead holder is taken over."""

    project_path = "project"  # how it belongs to a project (accounts.permissions)

    project = models.OneToOneField(Project, on_delete=models.CASCADE, related_name="lock", verbose_name=_("project"))
    run = models.ForeignKey(DeployRun, on_delete=models.CASCADE, related_name="+", verbose_name=_("run"))
    owner = models.CharField(_("owner"), max_length=200)
    acquired_at = models.DateTimeField(_("acquired at"))
    heartbeat_at = models.DateTimeField(_("heartbeat at"))
    lease_seconds = models.PositiveIntegerField(_("lease (seconds)"))

    class Meta:
        verbose_name = _("project lock")
        verbose_name_plural = _("project locks")

    def __str__(self) -> str:
        return gettext("lock on %(project)s by run %(run)s") % {"project": self.project, "run": self.run_id}

    def is_expired(self, now) -> bool:
        """Not renewed within its lease: its holder is dead (the one rule the
        lease and the reaper share)."""
        return self.heartbeat_at < now - timedelta(seconds=self.lease_seconds)


class RepositoryFetch(models.Model):
    """The worker's fetches of one project's mirror: when one was last asked
    for, started and ended, how the last one went, and when one last worked.

    Written by :mod:`releases.fetching` (the only place that fetches); pages read
    it to say how old the branch and commit lists are.
    """

    project_path = "project"  # how it belongs to a project (accounts.permissions)

    class Outcome(models.TextChoices):
        OK = "ok", _("Fetched")
        UNREACHABLE = "unreachable", _("Git server unreachable")
        CONFIG = "config", _("Repository settings invalid")
        ERROR = "error", _("Internal error")

    project = models.OneToOneField(Project, on_delete=models.CASCADE, related_name="repository_fetch", verbose_name=_("project"))
    requested_at = models.DateTimeField(_("requested at"), null=True, blank=True)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    outcome = models.CharField(_("outcome"), max_length=12, choices=Outcome.choices, blank=True)
    error = models.TextField(_("error"), blank=True)
    fetched_at = models.DateTimeField(_("fetched at"), null=True, blank=True)  # the last fetch that worked

    class Meta:
        verbose_name = _("repository fetch")
        verbose_name_plural = _("repository fetches")

    def __str__(self) -> str:
        return gettext("fetches of %(project)s") % {"project": self.project}
