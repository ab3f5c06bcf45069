"""/metrics counts notifications that failed after their last attempt."""

from __future__ import annotations

from notifications.models import Delivery, Event, Kind
from tests.test_metrics_endpoint import scrape, token  # noqa: F401 - the token fixture

from . import helpers

D = Delivery.Status


def _delivery(ticket, kind: str, event: str, status: str) -> Delivery:
    return Delivery.objects.create(channel=None, channel_name=kind, kind=kind, ticket=ticket, event=event,
                                   status=status)


def test_failed_notifications_are_counted_by_kind_and_event(world, client, token):  # noqa: F811
    ticket = helpers.make_ticket(world.project, world.users["developer"])
    _delivery(ticket, Kind.DINGTALK, Event.FAILED, D.FAILED)
    _delivery(ticket, Kind.DINGTALK, Event.FAILED, D.FAILED)
    _delivery(ticket, Kind.EMAIL, Event.SUBMITTED, D.FAILED)
    _delivery(ticket, Kind.DINGTALK, Event.FAILED, D.SENT)  # sent, queued or sending: not failures
    _delivery(ticket, Kind.SLACK, Event.FAILED, D.QUEUED)
    samples = scrape(client)
    failures = {labels: value for (name, labels), value in samples.items()
                if name == "walle_notification_failures_total"}
    assert failures == {
        (("event", "failed"), ("kind", "dingtalk")): 2,
        (("event", "submitted"), ("kind", "email")): 1,
    }
