"""Notification channels, a project's choice about its environment's default
channels, and each delivery with its outcome.

A channel belongs either to one project or, as a default, to one environment
(every project there hears it unless the project turns its environment's
defaults off). Its webhook URL and signing secret are encrypted at rest like
deploy keys: robot URLs carry their access key, so the URL is a secret too.
Pages and the API show only ``url_hint`` (scheme and host).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _

from projects import crypto
from projects.models import Environment, Project


class Event(models.TextChoices):
    SUBMITTED = "submitted", _("Ticket submitted")
    APPROVED = "approved", _("Ticket approved")
    REJECTED = "rejected", _("Ticket rejected")
    STARTED = "started", _("Deploy started")
    # A rollout's next batch waits for someone to press Promote (or Cancel).
    WAITING_FOR_PROMOTE = "waiting_for_promote", _("Waiting for promote")
    # Someone pressed Cancel instead, and the worker switched the run's hosts back.
    ROLLOUT_CANCELLED = "rollout_cancelled", _("Rollout cancelled, hosts switched back")
    SUCCEEDED = "succeeded", _("Deploy succeeded")
    FAILED = "failed", _("Deploy failed")
    ROLLED_BACK = "rolled_back", _("Rolled back")
    LOCK_TAKEN_OVER = "lock_taken_over", _("Lock taken over")
    WINDOW_OVERRIDDEN = "window_overridden", _("Deploy window overridden")
    SCHEDULE_REFUSED = "schedule_refused", _("Scheduled deploy refused")
    TEST = "test", _("Test message")


# What a channel may subscribe to (a test message is sent on request only).
SUBSCRIBABLE = [e for e in Event if e != Event.TEST]


def all_events() -> list[str]:
    return [e.value for e in SUBSCRIBABLE]


class Kind(models.TextChoices):
    DINGTALK = "dingtalk", _("DingTalk robot")
    WECOM = "wecom", _("WeCom robot")
    FEISHU = "feishu", _("Feishu robot")
    SLACK = "slack", _("Slack incoming webhook")
    EMAIL = "email", _("Email")
    WEBHOOK = "webhook", _("JSON webhook (HMAC-SHA256 signed)")


# Kinds that POST to a URL, and those among them that sign with a secret.
URL_KINDS = (Kind.DINGTALK, Kind.WECOM, Kind.FEISHU, Kind.SLACK, Kind.WEBHOOK)
SIGNED_KINDS = (Kind.DINGTALK, Kind.FEISHU, Kind.WEBHOOK)
MAX_URL_LENGTH = 2000


def validate_webhook_url(url: str) -> None:
    """Only http(s) URLs with a host, on one line: the worker POSTs to it."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        raise ValidationError(_("This URL cannot be read; check the host and port.")) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError(_("Enter an http:// or https:// URL with a host."))
    if len(url) > MAX_URL_LENGTH or any(c.isspace() or ord(c) < 32 for c in url):
        raise ValidationError(_("The URL must be one line without spaces, at most 2000 characters."))


def url_hint(url: str) -> str:
    """What may be shown of a URL: scheme and host (the path or query holds the key)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}/…"


class Channel(models.Model):
    """Where notifications go: one robot, webhook or list of mail recipients."""

    name = models.CharField(_("name"), max_length=100)
    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices)
    project = models.ForeignKey(
        Project, null=True, blank=True, on_delete=models.CASCADE, related_name="notification_channels",
        verbose_name=_("project"), help_text=_("Set this, or an environment (a default for all its projects)."),
    )
    environment = models.ForeignKey(
        Environment, null=True, blank=True, on_delete=models.CASCADE, related_name="notification_channels",
        verbose_name=_("environment (default)"),
        help_text=_("A default channel for every project in this environment; platform admins only."),
    )
    events = models.JSONField(_("events"), default=all_events)
    enabled = models.BooleanField(_("enabled"), default=True)
    recipients = models.TextField(
        _("mail recipients"), blank=True, help_text=_("Email channels: addresses, one a line or comma-separated."),
    )
    # Secrets: written, never read back (like DeployKey.private_key_encrypted).
    url_encrypted = models.TextField(_("URL (encrypted)"), editable=False, blank=True)
    secret_encrypted = models.TextField(_("secret (encrypted)"), editable=False, blank=True)
    url_hint = models.CharField(_("stored URL"), max_length=300, editable=False, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        verbose_name = _("notification channel")
        verbose_name_plural = _("notification channels")
        constraints = [
            models.CheckConstraint(
                condition=(models.Q(project__isnull=False, environment__isnull=True)
                           | models.Q(project__isnull=True, environment__isnull=False)),
                name="channel_project_xor_environment",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def scope(self) -> str:
        if self.project_id:
            return str(self.project)
        return _("default for %(environment)s") % {"environment": self.environment}

    def clean(self) -> None:
        if bool(self.project_id) == bool(self.environment_id):
            raise ValidationError(_("Choose a project or an environment, not both."))
        if not isinstance(self.events, list):
            raise ValidationError({"events": _("Give the events as a list.")})
        unknown = set(self.events) - set(all_events())
        if unknown:
            raise ValidationError({"events": _("Unknown events: %(names)s") % {"names": ", ".join(sorted(unknown))}})
        if self.kind == Kind.EMAIL:
            self.recipients = "\n".join(self.recipient_list())
            if not self.recipients:
                raise ValidationError({"recipients": _("An email channel needs at least one address.")})
            validate_recipients(self.recipient_list())

    def recipient_list(self) -> list[str]:
        return [a.strip() for a in self.recipients.replace(",", "\n").splitlines() if a.strip()]

    def set_url(self, url: str) -> None:
        validate_webhook_url(url)
        self.url_encrypted = crypto.encrypt(url)
        self.url_hint = url_hint(url)

    def set_secret(self, secret: str) -> None:
        self.secret_encrypted = crypto.encrypt(secret) if secret else ""

    # For the sender only: pages and the API never call these.
    def decrypted_url(self) -> str:
        return crypto.decrypt(self.url_encrypted) if self.url_encrypted else ""

    def decrypted_secret(self) -> str:
        return crypto.decrypt(self.secret_encrypted) if self.secret_encrypted else ""

    @property
    def has_secret(self) -> bool:
        return bool(self.secret_encrypted)


def validate_recipients(addresses: list[str]) -> None:
    from django.core.validators import validate_email

    for address in addresses:
        try:
            validate_email(address)
        except ValidationError:
            message = _("%(address)s is not an email address.") % {"address": address}
            raise ValidationError({"recipients": message}) from None


class ProjectNotificationSettings(models.Model):
    """A project's choice about its environment's default channels (no row:
    they apply)."""

    project_path = "project"  # how it belongs to a project (accounts.permissions)

    project = models.OneToOneField(
        Project, on_delete=models.CASCADE, related_name="notification_settings", verbose_name=_("project")
    )
    use_environment_defaults = models.BooleanField(
        _("use the environment's default channels"), default=True,
        help_text=_("Off: only this project's own channels hear about its tickets."),
    )

    class Meta:
        verbose_name = _("project notification settings")
        verbose_name_plural = _("project notification settings")

    def __str__(self) -> str:
        return str(self.project)


class Delivery(models.Model):
    """One message to one channel, and how it went."""

    project_path = "ticket__project"  # how it belongs to a project (accounts.permissions)

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        SENDING = "sending", _("Sending")
        SENT = "sent", _("Sent")
        FAILED = "failed", _("Failed")

    channel = models.ForeignKey(Channel, null=True, on_delete=models.SET_NULL, related_name="deliveries", verbose_name=_("channel"))
    # Kept when the channel is deleted, so the history still reads.
    channel_name = models.CharField(_("channel"), max_length=100)
    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices)
    ticket = models.ForeignKey(
        "releases.Ticket", null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries", verbose_name=_("ticket")
    )
    ticket_event = models.ForeignKey(
        "releases.TicketEvent", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", verbose_name=_("ticket event")
    )
    event = models.CharField(_("event"), max_length=20, choices=Event.choices)
    requested_by = models.ForeignKey(  # test messages: who pressed the button
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", verbose_name=_("requested by")
    )
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    http_status = models.PositiveSmallIntegerField(_("HTTP status"), null=True, blank=True)
    last_error = models.TextField(_("last error"), blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)  # claimed by a worker
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("notification delivery")
        verbose_name_plural = _("notification deliveries")
        constraints = [
            # One delivery per channel and ticket event, however often the event is handled.
            models.UniqueConstraint(fields=["channel", "ticket_event"], name="delivery_once_per_channel_event"),
        ]
        indexes = [models.Index(fields=["status"], name="delivery_status")]

    def __str__(self) -> str:
        return f"{self.get_event_display()} → {self.channel_name}: {self.get_status_display()}"
