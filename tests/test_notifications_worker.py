"""The real path: a workflow action writes a ticket event, the commit hands a
delivery to the broker, and the real django-q2 worker process (qcluster)
signs and sends it to the real receiver on 127.0.0.1; and a real deploy to
real hosts succeeds while every notification about it fails."""

from __future__ import annotations

import pytest

from notifications.models import Delivery, Event, Kind
from releases import workflow
from releases.models import Ticket
from tests.deploy_fixtures import V1_TEXT, open_approved_ticket, wait_for
from tests.notify_receiver import receiver  # noqa: F401 - the receiver fixture

from .test_notifications_delivery import make_channel

pytestmark = [pytest.mark.worker]

BASE_URL = "https://walle.example.com"


@pytest.fixture
def worker_base_url(monkeypatch) -> str:
    # Read by the worker process at start (it has no request to take the host from).
    monkeypatch.setenv("WALLE_BASE_URL", BASE_URL)
    return BASE_URL


def test_the_worker_delivers_signed_messages_for_real_ticket_events(transactional_db, world, receiver,  # noqa: F811
                                                                   worker_base_url, qcluster):
    make_channel(Kind.WEBHOOK, receiver, project=world.project)
    make_channel(Kind.DINGTALK, receiver, environment=world.project.environment)
    ticket = workflow.submit(world.users["developer"], world.project, title="ship the cart", ref="master",
                             commit="a1" * 20)
    workflow.approve(world.users["owner"], ticket, version=ticket.version)

    got = receiver.wait(4, timeout=60)
    assert all(r.verified for r in got), [r.problem for r in got]
    hooks = sorted((r.json["event"], r.json["who"]) for r in got if r.vendor == "webhook")
    assert hooks == [(Event.APPROVED, "owner"), (Event.SUBMITTED, "developer")]
    assert all(r.json["url"] == f"{BASE_URL}/tickets/{ticket.pk}/" for r in got if r.vendor == "webhook")
    robot = [r for r in got if r.vendor == "dingtalk"]
    assert len(robot) == 2 and "ship the cart" in robot[0].json["markdown"]["text"]

    def all_sent():
        return set(Delivery.objects.filter(ticket=ticket).values_list("status", flat=True)) == {Delivery.Status.SENT}

    wait_for(all_sent, timeout=30)
    assert Delivery.objects.filter(ticket=ticket).count() == 4


@pytest.mark.sshd
def test_a_real_deploy_succeeds_while_every_notification_fails(site, receiver, worker_base_url, qcluster):  # noqa: F811
    make_channel(Kind.WEBHOOK, receiver, project=site.project)
    receiver.script = [(500, b"down for maintenance", 0.0)] * 60  # the receiver is broken all along
    ticket = open_approved_ticket(site, "v1")
    workflow.deploy(site.users["developer"], ticket)

    wait_for(lambda: Ticket.objects.get(pk=ticket.pk).status in Ticket.FINAL_STATUSES + (Ticket.Status.FAILED,),
             timeout=180)
    assert Ticket.objects.get(pk=ticket.pk).status == Ticket.Status.SUCCEEDED
    assert all(V1_TEXT in page for page in site.pages())

    expected = {Event.SUBMITTED, Event.APPROVED, Event.STARTED, Event.SUCCEEDED}
    failed = Delivery.objects.filter(ticket=ticket, status=Delivery.Status.FAILED)
    wait_for(lambda: failed.count() == len(expected), timeout=120)
    assert set(failed.values_list("event", flat=True)) == expected
    assert set(failed.values_list("attempts", "http_status")) == {(3, 500)}  # bounded retries, each recorded
    succeeded = [r for r in receiver.received if r.json["event"] == Event.SUCCEEDED][0]
    assert succeeded.verified and succeeded.json["duration"] > 0
    assert sorted(succeeded.json["hosts"]) == sorted(h.name for h in site.host_records)
