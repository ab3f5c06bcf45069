"""From a ticket event to deliveries, and one delivery to its channel.

``notify_event`` runs after the workflow's transaction commits: it records a
queued Delivery per channel and hands each to the worker (django-q2). The
worker's ``deliver`` claims it (compare-and-set, so a re-delivered task sends
nothing twice), tries a bounded number of times with a timeout per attempt,
and records the outcome. Nothing here ever raises into the workflow.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from urllib.parse import parse_qsl, urlsplit

from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.permissions import can_configure_channel
from projects.models import Project
from releases.models import TicketEvent

from . import transports
from .events import Message, event_for, ticket_message, trial_message
from .models import Channel, Delivery, Event, Kind, ProjectNotificationSettings

logger = logging.getLogger(__name__)

ATTEMPTS = 3
TIMEOUT = 5.0  # seconds, per attempt
BACKOFF = (1.0, 4.0)  # seconds before the 2nd and the 3rd attempt
# The worker stops a delivery task after this (attempts and waits take about
# 20 s; a name lookup, which the per-attempt timeout does not cover, may hang).
TASK_TIMEOUT = 60
MAX_ERROR = 500
HIDDEN = "[hidden]"


def channels_for(project: Project) -> list[Channel]:
    """The project's own enabled channels, plus its environment's defaults
    unless the project turned them off."""
    scope = Q(project=project)
    settings = ProjectNotificationSettings.objects.filter(project=project).first()
    if settings is None or settings.use_environment_defaults:
        scope |= Q(environment_id=project.environment_id)
    return list(Channel.objects.filter(scope, enabled=True))


def has_channels(project_id: int) -> bool:
    """Could any channel hear about this project's tickets? (Cheap; ignores events and opt-outs.)"""
    return Channel.objects.filter(
        Q(project_id=project_id) | Q(environment__projects__id=project_id), enabled=True
    ).exists()


def notify_event(ticket_event_id: int) -> list[Delivery]:
    """After commit: queue a delivery for each channel that wants this event."""
    try:
        return _queue_deliveries(ticket_event_id)
    except Exception:  # a notification problem must never reach the workflow's caller
        logger.exception("notifications: could not queue deliveries for ticket event %s", ticket_event_id)
        return []


def _queue_deliveries(ticket_event_id: int) -> list[Delivery]:
    ticket_event = TicketEvent.objects.select_related("ticket__project").filter(pk=ticket_event_id).first()
    if ticket_event is None:
        return []
    ticket = ticket_event.ticket
    event = event_for(ticket_event.action, ticket.kind)
    if event is None:
        return []
    wanted = [c for c in channels_for(ticket.project) if event in c.events]
    deliveries = []
    for channel in wanted:
        delivery, created = Delivery.objects.get_or_create(
            channel=channel, ticket_event=ticket_event,
            defaults={"ticket": ticket, "event": event, "channel_name": channel.name, "kind": channel.kind},
        )
        if created:
            _enqueue(delivery)
            deliveries.append(delivery)
    return deliveries


def _enqueue(delivery: Delivery) -> None:
    from django_q.tasks import async_task

    try:
        async_task("notifications.tasks.deliver", delivery.pk, task_name=f"walle-notify-{delivery.pk}",
                   timeout=TASK_TIMEOUT)
    except Exception as exc:  # broker down: say so on the delivery instead of leaving it queued
        logger.warning("notifications: could not queue delivery %s: %s", delivery.pk, type(exc).__name__)
        _finish(delivery, ok=False, error=f"could not be queued: {type(exc).__name__}")


def send_test(actor, channel: Channel) -> Delivery:
    """Send a test message now, once, in this process, so whoever pressed the
    button sees the outcome at once; recorded like any delivery."""
    if not can_configure_channel(actor, channel):
        raise PermissionDenied(_("Only those who configure this channel may test it."))
    delivery = Delivery.objects.create(
        channel=channel, event=Event.TEST,
        channel_name=channel.name, kind=channel.kind, requested_by=actor,
    )
    deliver(delivery.pk, attempts=1)
    delivery.refresh_from_db()
    return delivery


def deliver(delivery_id: int, attempts: int = ATTEMPTS) -> str:
    """Send one delivery; try up to ``attempts`` times while failures are
    worth retrying (timeouts, connection errors, 5xx, 429)."""
    fail_abandoned_deliveries()
    if not Delivery.objects.filter(pk=delivery_id, status=Delivery.Status.QUEUED).update(
        status=Delivery.Status.SENDING, started_at=timezone.now()
    ):
        return f"delivery {delivery_id} was already sent or claimed"
    delivery = Delivery.objects.select_related("channel", "ticket__project__environment", "ticket_event__actor",
                                               "requested_by").get(pk=delivery_id)
    channel = delivery.channel
    if channel is None:
        _finish(delivery, ok=False, error="the channel was deleted")
        return "channel deleted"
    try:
        hidden = _secrets_of(channel)
    except Exception as exc:  # e.g. encrypted with a key-encryption key no longer configured
        _finish(delivery, ok=False, error=f"cannot decrypt the channel's URL or secret: {type(exc).__name__}")
        return "undecryptable"
    for attempt in range(1, attempts + 1):
        if attempt > 1:
            time.sleep(BACKOFF[min(attempt - 2, len(BACKOFF) - 1)])
        try:
            status = send_once(delivery, channel)
        except transports.SendError as exc:
            error = redact(str(exc), hidden)
            _record_attempt(delivery, attempt, exc.http_status, error)
            if not exc.retry or attempt == attempts:
                _finish(delivery, ok=False, error=error)
                return f"failed: {error}"
            continue
        except Exception as exc:  # a bug must still end the delivery, never leave it "sending"
            # No traceback: its messages may quote the URL, which holds the robot's key.
            logger.error("notifications: delivery %s crashed: %s", delivery_id, type(exc).__name__)
            _finish(delivery, ok=False, error=f"internal error: {type(exc).__name__}")
            return "crashed"
        _record_attempt(delivery, attempt, status, "")
        _finish(delivery, ok=True)
        return "sent"
    return "failed"


def fail_abandoned_deliveries() -> int:
    """End deliveries whose worker died or was stopped mid-send (claimed longer
    ago than any task may run), so none stays "sending" for ever. Every
    delivery task sweeps first: no schedule needed."""
    cutoff = timezone.now() - timedelta(seconds=TASK_TIMEOUT * 2)
    return Delivery.objects.filter(status=Delivery.Status.SENDING, started_at__lt=cutoff).update(
        status=Delivery.Status.FAILED, finished_at=timezone.now(),
        last_error="abandoned: the worker stopped while sending",
    )


def send_once(delivery: Delivery, channel: Channel) -> int | None:
    """One attempt; returns the HTTP status (None for mail) or raises SendError."""
    if delivery.ticket_id is None:
        who = delivery.requested_by.get_username() if delivery.requested_by else "walle"
        message = trial_message(channel.name, who)
    else:
        message = ticket_message(delivery.ticket, delivery.event, delivery.ticket_event)
    if channel.kind == Kind.EMAIL:
        transports.send_mail(channel.recipient_list(), message)
        return None
    request = build_request(channel, message, delivery.pk)
    status, reply = transports.post(request, TIMEOUT)
    transports.check_reply(channel.kind, status, reply)
    return status


def build_request(channel: Channel, message: Message, delivery_id: int) -> transports.Request:
    url, secret, now = channel.decrypted_url(), channel.decrypted_secret(), time.time()
    if channel.kind == Kind.DINGTALK:
        return transports.dingtalk_request(url, secret, message, int(now * 1000))
    if channel.kind == Kind.FEISHU:
        return transports.feishu_request(url, secret, message, int(now))
    if channel.kind == Kind.WECOM:
        return transports.wecom_request(url, message)
    if channel.kind == Kind.SLACK:
        return transports.slack_request(url, message)
    return transports.webhook_request(url, secret, message, int(now), delivery_id)


def _secrets_of(channel: Channel) -> list[str]:
    """Every piece of the channel's secrets an error text might quote: the
    URL, its path and query (where robots keep the key) and the secret."""
    url = channel.decrypted_url()
    parts = urlsplit(url)
    pieces = [url, channel.decrypted_secret(), parts.path, parts.query]
    pieces += [value for _name, value in parse_qsl(parts.query)]
    pieces += [segment for segment in parts.path.split("/") if len(segment) >= 8]
    pieces += [p.strip() for p in pieces]  # http.client quotes a URL trimmed
    return sorted({p for p in pieces if len(p) >= 4}, key=len, reverse=True)


def redact(text: str, hidden: list[str]) -> str:
    for piece in hidden:
        text = text.replace(piece, HIDDEN)
    return text[:MAX_ERROR]


def _record_attempt(delivery: Delivery, attempt: int, http_status: int | None, error: str) -> None:
    Delivery.objects.filter(pk=delivery.pk).update(attempts=attempt, http_status=http_status, last_error=error)


def _finish(delivery: Delivery, *, ok: bool, error: str = "") -> None:
    fields = {"status": Delivery.Status.SENT if ok else Delivery.Status.FAILED, "finished_at": timezone.now()}
    if error:
        fields["last_error"] = error[:MAX_ERROR]
    Delivery.objects.filter(pk=delivery.pk).update(**fields)
