"""Listen to the ticket events the workflow writes.

Why a post_save receiver: ``releases.workflow`` is the one writer of ticket
events and must not know about notifications (nothing may fail or slow a
deploy because a chat robot is down). The receiver only registers a callback
for after the commit (never inside the workflow's transaction), and that
callback swallows its own errors (``robust=True`` and ``notify_event``).
Inside the transaction it only asks whether the project has any channel at all.
"""

from __future__ import annotations

from functools import partial

from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

from releases.models import TicketEvent

from .events import ACTION_EVENTS


@receiver(post_save, sender=TicketEvent, dispatch_uid="notifications.ticket_event")
def ticket_event_saved(sender, instance: TicketEvent, created: bool, raw: bool = False, **kwargs) -> None:
    if not created or raw or instance.action not in ACTION_EVENTS:
        return
    from .sending import has_channels, notify_event

    # One indexed read: where no channel could hear it, nothing is left to run after the commit.
    if has_channels(instance.ticket.project_id):
        transaction.on_commit(partial(notify_event, instance.pk), robust=True)
