"""The worker side of a delivery (a django-q2 task): fetch the mirror, check
that the pushed ref really points at the commit the payload names, and open
the ticket through the workflow as the user the webhook acts as.

The payload is never trusted for what gets deployed: the ticket's commit is
what the repository says the branch or tag resolves to, and only if that is
the commit the delivery announced. The environment's approval rule applies as
for any ticket; a webhook deploys at once only where deploys need no approval.
"""

from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from accounts.permissions import Action, can
from releases import fetching, repository, workflow
from releases.models import Ticket
from walleproj.i18n import stored

from .models import ProjectWebhook, WebhookDelivery

logger = logging.getLogger(__name__)
Outcome = WebhookDelivery.Outcome


class Refused(Exception):
    """The delivery opens no ticket; the message says why and is stored (in
    the worker's language, WALLE_LANGUAGE: no reader's language is known here)."""

    def __init__(self, message: str, outcome: str = Outcome.REFUSED) -> None:
        super().__init__(message)
        self.outcome = outcome


def process_delivery(delivery_pk: int) -> str:
    """django-q2 task: act on one queued delivery. Runs once even if delivered twice."""
    # Compare-and-set: a re-delivered task finds it no longer queued.
    if not WebhookDelivery.objects.filter(pk=delivery_pk, outcome=Outcome.QUEUED).update(outcome=Outcome.PROCESSING):
        return "already processed"
    delivery = WebhookDelivery.objects.select_related("project").get(pk=delivery_pk)
    try:
        outcome, detail = _act(delivery)
    except Refused as exc:
        outcome, detail = exc.outcome, str(exc)
    except Exception:  # a bug must still end the delivery, not leave it processing
        logger.exception("webhook delivery %s failed", delivery_pk)
        outcome, detail = Outcome.FAILED, _("Internal error; see the worker's log.")
    WebhookDelivery.objects.filter(pk=delivery_pk).update(outcome=outcome, detail=detail, processed_at=timezone.now())
    return outcome


def _act(delivery: WebhookDelivery) -> tuple[str, str]:
    project = delivery.project
    hook = ProjectWebhook.objects.filter(project=project, enabled=True).select_related("acts_as").first()
    if hook is None:
        raise Refused(_("The project's webhook was disabled or removed meanwhile."))
    actor = hook.acts_as
    if actor is None or not can(actor, Action.SUBMIT, project):
        raise Refused(
            _("%(user)s may no longer open tickets on this project; a Maintainer must save the "
              "webhook settings again (tickets are then opened as that Maintainer).") % {"user": actor or _("Nobody")}
        )
    commit = _verified_commit(delivery)
    ticket = _submit(actor, delivery, commit)
    if not (hook.deploy_at_once and ticket.status == Ticket.Status.APPROVED):
        if ticket.status == Ticket.Status.PENDING:
            return Outcome.TICKET_OPENED, _("Opened ticket #%(ticket)s. It waits for approval.") % {"ticket": ticket.pk}
        return Outcome.TICKET_OPENED, _("Opened ticket #%(ticket)s.") % {"ticket": ticket.pk}
    return _deploy(actor, ticket)


def _verified_commit(delivery: WebhookDelivery) -> str:
    """The commit the ref resolves to after a fresh fetch, if it is the one
    the delivery announced; Refused otherwise."""
    project = delivery.project
    if delivery.ref_kind != project.repo_mode:
        raise Refused(_("The project's mode changed: it no longer deploys a %(kind)s.")
                      % {"kind": delivery.get_ref_kind_display().lower()})
    fetched = fetching.fetch_repository(project.pk)
    if fetched["outcome"] != fetching.Outcome.OK:
        raise Refused(_("Cannot fetch the repository: %(error)s") % {"error": fetched["error"]}, Outcome.FAILED)
    try:
        resolved = repository.resolve(project, delivery.ref)  # the fetch above made the mirror
    except repository.RepositoryError as exc:
        raise Refused(_("The repository does not confirm the push: %(error)s") % {"error": exc}) from None
    WebhookDelivery.objects.filter(pk=delivery.pk).update(commit=resolved.commit)
    if resolved.commit not in delivery.claimed:
        claimed = ", ".join(sorted(delivery.claimed)) or _("no commit")
        raise Refused(
            _("%(kind)s %(ref)s points at %(commit)s in the repository, but the delivery claimed %(claimed)s: "
              "a later push, or a forged payload. No ticket was opened.")
            % {"kind": delivery.get_ref_kind_display(), "ref": delivery.ref, "commit": resolved.commit,
               "claimed": claimed}
        )
    return resolved.commit


def _submit(actor, delivery: WebhookDelivery, commit: str) -> Ticket:
    pusher = delivery.pusher or "unknown"
    try:
        ticket = workflow.submit(
            actor, delivery.project, ref=delivery.ref, commit=commit,
            title=stored(gettext_noop("%(ref)s %(commit)s (push by %(pusher)s)"),
                         ref=delivery.ref, commit=commit[:8], pusher=pusher)[:200],
            description=stored(gettext_noop("Opened by a %(vendor)s webhook, delivery %(delivery)s; pushed by %(pusher)s."),
                               vendor=delivery.get_vendor_display(), delivery=delivery.delivery_id, pusher=pusher),
        )
    except (PermissionDenied, workflow.WorkflowError) as exc:
        raise Refused(_("The workflow refused to open a ticket: %(error)s") % {"error": exc}) from None
    WebhookDelivery.objects.filter(pk=delivery.pk).update(ticket=ticket)
    return ticket


def _deploy(actor, ticket: Ticket) -> tuple[str, str]:
    if not can(actor, Action.DEPLOY, ticket):
        return Outcome.TICKET_OPENED, (_("Opened ticket #%(ticket)s; %(user)s may not deploy it, so it was not deployed.")
                                       % {"ticket": ticket.pk, "user": actor})
    try:
        run = workflow.deploy(actor, ticket)
    except (PermissionDenied, workflow.WorkflowError) as exc:
        return Outcome.TICKET_OPENED, (_("Opened ticket #%(ticket)s; not deployed at once: %(error)s")
                                       % {"ticket": ticket.pk, "error": exc})
    return Outcome.DEPLOY_QUEUED, (_("Opened ticket #%(ticket)s and queued run %(run)s.")
                                   % {"ticket": ticket.pk, "run": run.number})
