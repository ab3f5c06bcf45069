"""The web side of a delivery: count forged ones, drop replays, record the
rest, decide whether it asks for a ticket and, if so, hand it to the worker.

Nothing here touches git: the worker fetches and resolves (:mod:`.processing`),
so the vendor gets its answer at once.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from projects.models import RepoMode

from . import vendors
from .models import ProjectWebhook, Vendor, WebhookDelivery

logger = logging.getLogger(__name__)

PROCESS_TASK = "webhooks.processing.process_delivery"
Outcome = WebhookDelivery.Outcome


@dataclass(frozen=True)
class Received:
    outcome: str
    delivery: WebhookDelivery | None  # None for a replay: nothing new was stored
    detail: str = ""


def reject(hook: ProjectWebhook, vendor: Vendor | None, address: str) -> None:
    """A request with a wrong signature or token: counted and logged, never stored."""
    ProjectWebhook.objects.filter(pk=hook.pk).update(
        rejected_count=F("rejected_count") + 1, last_rejected_at=timezone.now()
    )
    logger.warning("webhook of project %s: rejected a %s request from %s (bad signature or token)",
                   hook.project_id, vendor.label if vendor else "unrecognised", address)


def receive(hook: ProjectWebhook, vendor: Vendor, headers: Mapping[str, str], body: bytes) -> Received:
    """Record an authenticated delivery once and say what becomes of it."""
    digest = hashlib.sha256(body).hexdigest()
    # Without a delivery id header (older GitLab), the body is the identity:
    # the body digest is unique per project anyway.
    delivery_id = vendors.delivery_id_of(vendor, headers) or f"sha256:{digest}"
    try:
        with transaction.atomic():
            delivery = WebhookDelivery.objects.create(
                project_id=hook.project_id, vendor=vendor, event=vendors.event_of(vendor, headers),
                delivery_id=delivery_id, body_sha256=digest,
            )
    except IntegrityError:
        return _replayed(hook, delivery_id, digest)
    return _triage(hook, delivery, vendor, body)


def _replayed(hook: ProjectWebhook, delivery_id: str, digest: str) -> Received:
    WebhookDelivery.objects.filter(Q(delivery_id=delivery_id) | Q(body_sha256=digest), project_id=hook.project_id).update(
        replays=F("replays") + 1, last_replayed_at=timezone.now()
    )
    return Received(Outcome.REPLAYED, None, _("This delivery was received before; a replay is ignored."))


def _triage(hook: ProjectWebhook, delivery: WebhookDelivery, vendor: Vendor, body: bytes) -> Received:
    try:
        push = vendors.parse_push(vendor, delivery.event, body)
    except vendors.PayloadError as exc:
        return _finish(delivery, Outcome.IGNORED, str(exc))
    if push is None:
        return _finish(delivery, Outcome.IGNORED, _("A %(event)s event is not a push.") % {"event": delivery.event or _("unnamed")})
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        ref_kind=push.ref_kind, ref=push.name, claimed_commit=push.after, claimed_head=push.head, pusher=push.pusher
    )
    reason = why_not(hook, push)
    if reason:
        return _finish(delivery, Outcome.IGNORED, reason)
    transaction.on_commit(lambda: _enqueue(delivery.pk))
    return Received(Outcome.QUEUED, delivery, _("The worker checks the commit against the repository next."))


def why_not(hook: ProjectWebhook, push: vendors.Push) -> str:
    """Why this push opens no ticket, or "" if it should open one."""
    mode = hook.project.repo_mode
    if push.deleted:
        return _("%(kind)s %(name)s was deleted.") % {"kind": RepoMode(push.ref_kind).label if push.ref_kind else _("Ref"), "name": push.name}
    if push.ref_kind == RepoMode.BRANCH:
        if mode != RepoMode.BRANCH or not hook.wants_branch(push.name):
            return _("Tickets are not opened for pushes to branch %(name)s.") % {"name": push.name}
        return ""
    if push.ref_kind == RepoMode.TAG:
        if mode != RepoMode.TAG or not hook.wants_tag(push.name):
            return _("Tickets are not opened for tag %(name)s.") % {"name": push.name}
        if not push.created:
            return _("Tag %(name)s was moved, not created; only new tags open tickets.") % {"name": push.name}
        return ""
    return _("%(name)s is neither a branch nor a tag.") % {"name": push.name}


def _finish(delivery: WebhookDelivery, outcome: str, detail: str) -> Received:
    WebhookDelivery.objects.filter(pk=delivery.pk).update(outcome=outcome, detail=detail, processed_at=timezone.now())
    delivery.refresh_from_db()
    return Received(outcome, delivery, detail)


def _enqueue(delivery_pk: int) -> None:
    from django_q.tasks import async_task

    async_task(PROCESS_TASK, delivery_pk, task_name=f"walle-webhook-{delivery_pk}")
