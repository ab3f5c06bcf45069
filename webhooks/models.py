"""Inbound git webhooks: one per project (its URL and secret), and a record of
every authenticated delivery with what came of it."""

from __future__ import annotations

import secrets as random
from fnmatch import fnmatchcase

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from engine import git
from projects import crypto
from projects.models import Project, RepoMode


def new_hook_id() -> str:
    """The id in the webhook's URL: unguessable, so the URL alone reveals no project."""
    return random.token_urlsafe(24)


def _validate_branch(name: str) -> None:
    try:
        git.validate_ref_name(name)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


class Vendor(models.TextChoices):
    GITHUB = "github", "GitHub"
    GITLAB = "gitlab", "GitLab"
    GITEA = "gitea", "Gitea"


class ProjectWebhook(models.Model):
    """A project's webhook: who may call it (the secret), and what a push does."""

    project_path = "project"  # how it belongs to a project (accounts.permissions)

    project = models.OneToOneField(Project, on_delete=models.CASCADE, related_name="webhook", verbose_name=_("project"))
    hook_id = models.CharField(_("URL id"), max_length=64, unique=True, editable=False, default=new_hook_id)
    secret_encrypted = models.TextField(_("secret (encrypted)"), editable=False)
    enabled = models.BooleanField(_("enabled"), default=True)
    branch = models.CharField(
        _("open tickets for pushes to branch"), max_length=255, blank=True, validators=[_validate_branch],
        help_text=_("Empty = pushes open no tickets. Only for projects that deploy branches."),
    )
    tag_pattern = models.CharField(
        _("open tickets for new tags matching"), max_length=255, blank=True,
        help_text=_("A shell-style pattern such as v* or release-*; empty = none. Only for projects that deploy tags."),
    )
    deploy_at_once = models.BooleanField(
        _("deploy at once where no approval is needed"), default=False,
        help_text=_("Only in environments whose deploys need no approval; elsewhere the ticket waits for approval."),
    )
    acts_as = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, editable=False, related_name="+",
        verbose_name=_("opens tickets as"),
        help_text=_("The Maintainer who last saved these settings; their rights are checked at every delivery."),
    )
    # Unauthenticated requests are only counted, never stored one by one, so a
    # flood of forged deliveries cannot grow the database.
    rejected_count = models.PositiveIntegerField(_("rejected requests"), default=0, editable=False)
    last_rejected_at = models.DateTimeField(_("last rejected"), null=True, editable=False)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("project webhook")
        verbose_name_plural = _("project webhooks")

    def __str__(self) -> str:
        return str(self.project)

    def clean(self) -> None:
        project = Project.objects.filter(pk=self.project_id).first()
        if project is None:
            return
        # A ticket deploys what the project deploys: a branch project cannot
        # ship a tag, nor a tag project a branch.
        if self.branch and project.repo_mode != RepoMode.BRANCH:
            raise ValidationError({"branch": _("This project deploys tags; leave the branch empty.")})
        if self.tag_pattern and project.repo_mode != RepoMode.TAG:
            raise ValidationError({"tag_pattern": _("This project deploys branches; leave the tag pattern empty.")})

    def new_secret(self) -> str:
        """Set a fresh secret (not saved here) and return it: the only time it is seen."""
        value = random.token_urlsafe(32)
        self.secret_encrypted = crypto.encrypt(value)
        return value

    def secret(self) -> str:
        return crypto.decrypt(self.secret_encrypted)

    def path(self) -> str:
        return reverse("webhook-receive", kwargs={"hook_id": self.hook_id})

    def wants_branch(self, name: str) -> bool:
        return bool(self.branch) and name == self.branch

    def wants_tag(self, name: str) -> bool:
        return bool(self.tag_pattern) and fnmatchcase(name, self.tag_pattern)


class WebhookDelivery(models.Model):
    """One authenticated delivery and its outcome (replays only count here)."""

    project_path = "project"

    class Outcome(models.TextChoices):
        QUEUED = "queued", _("queued")
        PROCESSING = "processing", _("processing")
        IGNORED = "ignored", _("ignored")
        TICKET_OPENED = "ticket_opened", _("ticket opened")
        DEPLOY_QUEUED = "deploy_queued", _("ticket opened and deploy queued")
        REFUSED = "refused", _("refused")
        FAILED = "failed", _("failed")
        # Only ever an answer to the vendor: a replay is counted on the first
        # delivery's row, never stored as a row of its own.
        REPLAYED = "replayed", _("replay ignored")

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="webhook_deliveries",
                                verbose_name=_("project"))
    vendor = models.CharField(_("vendor"), max_length=10, choices=Vendor.choices)
    event = models.CharField(_("event"), max_length=64)
    delivery_id = models.CharField(_("delivery id"), max_length=100)
    body_sha256 = models.CharField(_("body SHA-256"), max_length=64, editable=False)
    ref_kind = models.CharField(_("ref kind"), max_length=10, choices=RepoMode.choices, blank=True)
    ref = models.CharField(_("ref"), max_length=255, blank=True)
    claimed_commit = models.CharField(_("commit in the payload"), max_length=40, blank=True)
    # The commit a tag push names besides the tag object (GitHub head_commit,
    # GitLab checkout_sha); for a branch usually the same as claimed_commit.
    claimed_head = models.CharField(_("claimed head"), max_length=40, blank=True)
    commit = models.CharField(_("commit in the repository"), max_length=40, blank=True)
    pusher = models.CharField(_("pushed by"), max_length=100, blank=True)
    received_at = models.DateTimeField(_("received"), auto_now_add=True)
    processed_at = models.DateTimeField(_("processed"), null=True, blank=True)
    outcome = models.CharField(_("outcome"), max_length=20, choices=Outcome.choices, default=Outcome.QUEUED)
    detail = models.TextField(_("detail"), blank=True)
    ticket = models.ForeignKey(
        "releases.Ticket", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", verbose_name=_("ticket")
    )
    replays = models.PositiveIntegerField(_("replays ignored"), default=0)
    last_replayed_at = models.DateTimeField(_("last replayed"), null=True, blank=True)

    class Meta:
        ordering = ["-received_at", "-pk"]
        verbose_name = _("webhook delivery")
        verbose_name_plural = _("webhook deliveries")
        constraints = [
            models.UniqueConstraint(fields=["project", "delivery_id"], name="webhook_delivery_once"),
            # The signature covers the body only, so a captured request sent
            # again under a new delivery id header is a replay too.
            models.UniqueConstraint(fields=["project", "body_sha256"], name="webhook_body_once"),
        ]

    def __str__(self) -> str:
        return f"{self.get_vendor_display()} {self.event} {self.delivery_id}"

    @property
    def claimed(self) -> set[str]:
        return {sha for sha in (self.claimed_commit, self.claimed_head) if sha}
