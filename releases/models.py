"""Deploy tickets, their audit trail, runs, per-host results, logs and releases.

Status fields are written only by :mod:`releases.workflow`; everything here is
data, constraints and read helpers.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import models
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
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")
        CANCELLED = "cancelled", _("Cancelled")

    ACTIVE_STATUSES = (Status.QUEUED, Status.DEPLOYING, Status.WAITING)
    FINAL_STATUSES = (Status.SUCCEEDED, Status.CANCELLED)

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="tickets")
    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices, default=Kind.DEPLOY)
    title = models.CharField(_("title"), max_length=200)
    description = models.TextField(_("description"), blank=True)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="tickets")
    status = models.CharField(_("status"), max_length=12, choices=Status.choices, default=Status.PENDING)
    ref_kind = models.CharField(_("ref kind"), max_length=10, choices=RepoMode.choices, default=RepoMode.BRANCH)
    ref = models.CharField(_("branch or tag"), max_length=255)
    commit = models.CharField(_("commit"), max_length=40, blank=True)
    hosts = models.ManyToManyField(Host, related_name="tickets", verbose_name=_("hosts"))
    # For rollbacks: the ticket being undone, and optionally a named release.
    rollback_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="rollbacks"
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
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    scheduled_version = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("ticket")
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
    def is_rollback(self) -> bool:
        return self.kind == self.Kind.ROLLBACK

    def latest_run(self) -> DeployRun | None:
        return self.runs.order_by("-number").first()


class TicketEvent(models.Model):
    """Append-only audit row for every change to a ticket."""

    project_path = "ticket__project"  # how it belongs to a project (accounts.permissions)

    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="events")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    action = models.CharField(_("action"), max_length=30)
    from_status = models.CharField(max_length=12, choices=Ticket.Status.choices, blank=True)
    to_status = models.CharField(max_length=12, choices=Ticket.Status.choices, blank=True)
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name = _("ticket event")

    def __str__(self) -> str:
        return f"{self.action}: {self.from_status or '-'} -> {self.to_status or '-'}"


class WindowEvent(models.TextChoices):
    """TicketEvent actions of deploy windows and scheduled deploys (the audit
    log and notifications read them)."""

    WINDOW_OVERRIDE = "window_override", _("Deployed outside the deploy window")
    SCHEDULE = "schedule", _("Scheduled")
    UNSCHEDULE = "unschedule", _("Unscheduled")
    SCHEDULE_REFUSED = "schedule_refused", _("Scheduled deploy refused")


class RunStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    WAITING = "waiting", _("Waiting for promote")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")
    CANCELLED = "cancelled", _("Cancelled")


ACTIVE_RUN_STATUSES = [RunStatus.QUEUED.value, RunStatus.RUNNING.value, RunStatus.WAITING.value]
# A worker is at work on the run (it holds the project's lease).
WORKING_RUN_STATUSES = [RunStatus.RUNNING.value, RunStatus.WAITING.value]


class DeployRun(models.Model):
    """One execution of a ticket by the worker. A failed ticket may run again."""

    project_path = "ticket__project"  # how it belongs to a project (accounts.permissions)

    Status = RunStatus
    ACTIVE_STATUSES = ACTIVE_RUN_STATUSES
    WORKING_STATUSES = WORKING_RUN_STATUSES

    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="runs")
    number = models.PositiveIntegerField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    triggered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    release_name = models.CharField(max_length=64, blank=True)
    commit = models.CharField(max_length=40, blank=True)
    stage = models.CharField(max_length=20, blank=True)
    error = models.TextField(blank=True)
    worker = models.CharField(max_length=200, blank=True)
    failed_batch = models.CharField(max_length=16, blank=True)  # "2/3": the rollout batch that failed
    # A retry: the failed run whose release (name and prepared copies) it reuses.
    resumes = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["ticket", "number"]
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
        return f"run {self.number} of ticket #{self.ticket_id}"

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

    run = models.ForeignKey(DeployRun, on_delete=models.CASCADE, related_name="host_results")
    host = models.ForeignKey(Host, on_delete=models.PROTECT, related_name="run_results")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    release = models.CharField(max_length=64, blank=True)
    previous_release = models.CharField(max_length=64, blank=True)
    error = models.TextField(blank=True)
    duration = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["run", "host__address", "host__port"]
        constraints = [models.UniqueConstraint(fields=["run", "host"], name="runhost_unique")]

    def __str__(self) -> str:
        return f"{self.host} in run {self.run_id}: {self.status}"


class LogLine(models.Model):
    """One line of a run's console, in order. Kept for every run (never wiped)."""

    project_path = "run__ticket__project"  # how it belongs to a project (accounts.permissions)

    run = models.ForeignKey(DeployRun, on_delete=models.CASCADE, related_name="log_lines")
    seq = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
    host = models.CharField(max_length=300, blank=True)  # "" = the deploy host
    stage = models.CharField(max_length=20)
    stream = models.CharField(max_length=10)
    text = models.TextField()

    class Meta:
        ordering = ["run", "seq"]
        constraints = [models.UniqueConstraint(fields=["run", "seq"], name="logline_unique_seq")]

    def __str__(self) -> str:
        return f"[{self.stage}] {self.host or 'deploy host'}: {self.text[:80]}"


class Release(models.Model):
    """A release directory on one host: which commit and ticket it holds."""

    project_path = "project"  # how it belongs to a project (accounts.permissions)

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="releases")
    host = models.ForeignKey(Host, on_delete=models.CASCADE, related_name="releases")
    name = models.CharField(max_length=64)
    commit = models.CharField(max_length=40)
    ticket = models.ForeignKey(Ticket, on_delete=models.PROTECT, related_name="releases")
    run = models.ForeignKey(DeployRun, on_delete=models.SET_NULL, null=True, related_name="releases")
    is_live = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    switched_at = models.DateTimeField(null=True, blank=True)
    removed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-name"]
        constraints = [
            models.UniqueConstraint(fields=["project", "host", "name"], name="release_unique_name"),
            models.UniqueConstraint(
                fields=["project", "host"], condition=models.Q(is_live=True), name="release_one_live_per_host"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} on {self.host}"


class ProjectLock(models.Model):
    """At most one run per project at a time; leased so a dead holder is taken over."""

    project_path = "project"  # how it belongs to a project (accounts.permissions)

    project = models.OneToOneField(Project, on_delete=models.CASCADE, related_name="lock")
    run = models.ForeignKey(DeployRun, on_delete=models.CASCADE, related_name="+")
    owner = models.CharField(max_length=200)
    acquired_at = models.DateTimeField()
    heartbeat_at = models.DateTimeField()
    lease_seconds = models.PositiveIntegerField()

    def __str__(self) -> str:
        return f"lock on {self.project} by run {self.run_id}"

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

    project = models.OneToOneField(Project, on_delete=models.CASCADE, related_name="repository_fetch")
    requested_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=12, choices=Outcome.choices, blank=True)
    error = models.TextField(blank=True)
    fetched_at = models.DateTimeField(null=True, blank=True)  # the last fetch that worked

    def __str__(self) -> str:
        return f"fetches of {self.project}"
