"""Which ticket events are notifications, and what a message says.

The source of events is ``releases.models.TicketEvent``, written only by
``releases.workflow``; this table maps its actions to notification events.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings
from django.urls import reverse
from django.utils.translation import gettext as _

from releases.models import DeployRun, Ticket, TicketAction, TicketEvent

from .models import Event

A = TicketAction

# TicketEvent.action -> notification event. Actions not listed (edit, cancel,
# deploy = queued, release_lock, schedule...) send nothing: a waiting rollout's
# cancel is told once it has ended, by its switch_back.
ACTION_EVENTS: dict[str, Event] = {
    A.SUBMIT: Event.SUBMITTED,
    A.RESUBMIT: Event.SUBMITTED,  # back in the approvers' queue
    A.RESUBMIT_APPROVED: Event.SUBMITTED,
    A.REOPEN: Event.SUBMITTED,  # edited after approval: needs approval again
    A.APPROVE: Event.APPROVED,
    A.REJECT: Event.REJECTED,
    A.START: Event.STARTED,
    A.WAIT: Event.WAITING_FOR_PROMOTE,  # someone must press Promote (or Cancel) on the ticket
    A.SWITCH_BACK: Event.ROLLOUT_CANCELLED,  # the end of that Cancel: the hosts serve what they served before
    A.SUCCEED: Event.SUCCEEDED,  # Event.ROLLED_BACK for a rollback ticket
    A.FAIL: Event.FAILED,
    A.LOCK_TAKEN_OVER: Event.LOCK_TAKEN_OVER,
    A.WINDOW_OVERRIDE: Event.WINDOW_OVERRIDDEN,
    A.SCHEDULE_REFUSED: Event.SCHEDULE_REFUSED,  # nobody is watching at the scheduled time
}

# Events whose note is worth sending: a reason a person wrote, the
# takeover's explanation, which batch waits for a promote, or where a rollout
# was cancelled and by whom ("batch 2/3: cancelled by alice"). A failed run's
# error stays on the ticket page (it can quote build output, which is not for
# every chat group).
NOTE_EVENTS = (Event.REJECTED, Event.LOCK_TAKEN_OVER, Event.WINDOW_OVERRIDDEN, Event.SCHEDULE_REFUSED,
               Event.WAITING_FOR_PROMOTE, Event.ROLLOUT_CANCELLED)
MAX_NOTE = 500


def event_for(action: str, kind: str) -> Event | None:
    event = ACTION_EVENTS.get(action)
    if event == Event.SUCCEEDED and kind == Ticket.Kind.ROLLBACK:
        return Event.ROLLED_BACK
    return event


def ticket_url(ticket_id: int) -> str:
    """An absolute link: the worker has no request to take the host from."""
    return settings.WALLE_BASE_URL.rstrip("/") + reverse("ticket_detail", args=[ticket_id])


@dataclass
class Message:
    """What every channel says, in plain values; each transport formats it."""

    event: str
    title: str
    project: str = ""
    project_slug: str = ""
    environment: str = ""
    ticket_id: int | None = None
    ticket_title: str = ""
    ticket_kind: str = ""
    status: str = ""
    who: str = ""
    ref: str = ""
    commit: str = ""
    hosts: list[str] = field(default_factory=list)
    duration: float | None = None
    note: str = ""
    url: str = ""

    def lines(self) -> list[str]:
        """The body as labelled lines (chat robots and mail)."""
        rows = [
            (_("Project"), f"{self.project} ({self.environment})" if self.project else ""),
            (_("Ticket"), f"#{self.ticket_id} {self.ticket_title}" if self.ticket_id else ""),
            (_("Status"), self.status),
            (_("By"), self.who),
            (_("Ref"), f"{self.ref} @ {self.commit[:8]}" if self.ref else ""),
            (_("Hosts"), ", ".join(self.hosts)),
            (_("Duration"), f"{self.duration:.1f}s" if self.duration is not None else ""),
            (_("Note"), self.note),
            (_("Link"), self.url),
        ]
        return [f"{label}: {value}" for label, value in rows if value]

    def as_text(self) -> str:
        return "\n".join([self.title, *self.lines()])


def _who(run: DeployRun | None, ticket_event: TicketEvent | None) -> str:
    if ticket_event is not None and ticket_event.actor is not None:
        return ticket_event.actor.get_username()
    # The worker's moves have no actor: name whoever pressed deploy.
    if run is not None and run.triggered_by is not None:
        return run.triggered_by.get_username()
    return "walle"


def _approvers(ticket: Ticket, ticket_event: TicketEvent | None) -> str:
    """Everyone whose approval of the version approved counts, in order ("" if
    unknown): where two approvals are required, the message names both."""
    if ticket_event is None or ticket_event.actor_id is None:
        return ""
    last = ticket.approvals.filter(approver_id=ticket_event.actor_id, created_at__lte=ticket_event.created_at).last()
    if last is None:
        return ""
    names = ticket.approvals.filter(version=last.version).values_list("approver__username", flat=True)
    return ", ".join(names)


def _canceller(ticket: Ticket, ticket_event: TicketEvent | None) -> str:
    """Who pressed Cancel on the rollout the worker has just switched back ("" if
    unknown): the switch_back itself is the worker's move, which has no actor."""
    if ticket_event is None:
        return ""
    cancel = ticket.events.filter(action=A.CANCEL, pk__lt=ticket_event.pk, actor__isnull=False).last()
    return cancel.actor.get_username() if cancel is not None else ""


def ticket_message(ticket: Ticket, event: str, ticket_event: TicketEvent | None) -> Message:
    run = ticket.latest_run()
    label = Event(event).label
    # "Walle" first: a robot that only accepts messages with a keyword can use it.
    title = f"Walle [{ticket.project.environment}] {ticket.project.name}: {label} — #{ticket.pk} {ticket.title}"
    note = ticket_event.note if ticket_event is not None and event in NOTE_EVENTS else ""
    if event == Event.FAILED and run is not None and run.failed_batch:
        # Which batch of the rollout failed: the hosts of earlier batches were switched back.
        note = _("Batch %(batch)s of the rollout failed.") % {"batch": run.failed_batch}
    # The status the event moved the ticket to, not whatever it is by the time this is sent.
    moved_to = ticket_event.to_status if ticket_event is not None and ticket_event.to_status else ticket.status
    return Message(
        event=event, title=title, project=ticket.project.name, project_slug=ticket.project.slug,
        environment=str(ticket.project.environment), ticket_id=ticket.pk, ticket_title=ticket.title,
        ticket_kind=ticket.kind, status=str(Ticket.Status(moved_to).label),
        who=((event == Event.APPROVED and _approvers(ticket, ticket_event))
             or (event == Event.ROLLOUT_CANCELLED and _canceller(ticket, ticket_event)) or _who(run, ticket_event)),
        ref=ticket.ref, commit=(run.commit if run and run.commit else ticket.commit),
        hosts=[h.name for h in ticket.hosts.order_by("address", "port")],
        duration=run.duration if run else None, note=note[:MAX_NOTE], url=ticket_url(ticket.pk),
    )


def trial_message(channel_name: str, who: str) -> Message:
    title = _("Walle test message for channel %(name)s") % {"name": channel_name}
    return Message(event=Event.TEST, title=title, who=who, note=_("If you read this, the channel works."),
                   url=settings.WALLE_BASE_URL.rstrip("/") + "/")
