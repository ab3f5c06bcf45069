"""Notifications reach each vendor's real receiver on 127.0.0.1 with the
vendor's signature, say what happened, retry only what may succeed later,
never leak a channel secret, and never hold up or break the workflow."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from notifications import sending
from notifications.events import ACTION_EVENTS, event_for
from notifications.models import (
    SIGNED_KINDS,
    URL_KINDS,
    Channel,
    Delivery,
    Event,
    Kind,
    ProjectNotificationSettings,
    all_events,
)
from projects import crypto
from releases import workflow
from releases.models import DeployRun, RunHost, Ticket, TicketAction, TicketEvent
from tests.notify_receiver import KEY, SECRET, receiver  # noqa: F401 - the receiver fixture

from . import helpers

S = Ticket.Status
D = Delivery.Status


def make_channel(kind: str, receiver, *, project=None, environment=None, **kw) -> Channel:  # noqa: F811
    channel = Channel(name=f"{kind} channel", kind=kind, project=project, environment=environment, **kw)
    if kind in URL_KINDS:
        channel.set_url(receiver.url(kind))
    if kind in SIGNED_KINDS:
        channel.set_secret(receiver.secret)
    if kind == Kind.EMAIL and not channel.recipients:
        channel.recipients = "ops@example.com"
    channel.full_clean()
    channel.save()
    return channel


def deployed_ticket(world, kind: str = Ticket.Kind.DEPLOY, seconds: float = 12.0) -> tuple[Ticket, TicketEvent]:
    """A ticket whose run the maintainer started and which just succeeded (the worker's event, no actor)."""
    ticket = helpers.make_ticket(world.project, world.users["developer"], S.SUCCEEDED, kind=kind, commit="c0ffee" * 6 + "abcd")
    end = timezone.now()
    DeployRun.objects.create(ticket=ticket, number=1, status=DeployRun.Status.SUCCEEDED, commit=ticket.commit,
                             triggered_by=world.users["maintainer"], started_at=end - timedelta(seconds=seconds),
                             finished_at=end)
    event = TicketEvent.objects.create(ticket=ticket, action=TicketAction.SUCCEED,
                                       from_status=S.DEPLOYING, to_status=S.SUCCEEDED)
    return ticket, event


@pytest.fixture
def no_backoff(monkeypatch):
    monkeypatch.setattr(sending, "BACKOFF", (0.0, 0.0))


# --- What fires ------------------------------------------------------------------

def test_every_mapped_action_is_one_the_workflow_writes():
    written = {action for action, _ in workflow.TRANSITIONS} | {"submit", "lock_taken_over", "release_lock"}
    planned = {"window_override", "schedule_refused"}  # written by the deploy-window and schedule work
    assert set(ACTION_EVENTS) - written - planned == set()


@pytest.mark.parametrize(("action", "kind", "expected"), [
    ("submit", Ticket.Kind.DEPLOY, Event.SUBMITTED),
    ("approve", Ticket.Kind.DEPLOY, Event.APPROVED),
    ("reject", Ticket.Kind.DEPLOY, Event.REJECTED),
    ("start", Ticket.Kind.DEPLOY, Event.STARTED),
    ("wait", Ticket.Kind.DEPLOY, Event.WAITING_FOR_PROMOTE),
    ("cancel", Ticket.Kind.DEPLOY, None),  # also of a waiting rollout: told once its hosts are back
    ("switch_back", Ticket.Kind.DEPLOY, Event.ROLLOUT_CANCELLED),
    ("succeed", Ticket.Kind.DEPLOY, Event.SUCCEEDED),
    ("succeed", Ticket.Kind.ROLLBACK, Event.ROLLED_BACK),
    ("fail", Ticket.Kind.ROLLBACK, Event.FAILED),
    ("lock_taken_over", Ticket.Kind.DEPLOY, Event.LOCK_TAKEN_OVER),
    ("window_override", Ticket.Kind.DEPLOY, Event.WINDOW_OVERRIDDEN),
    ("schedule_refused", Ticket.Kind.DEPLOY, Event.SCHEDULE_REFUSED),
    ("schedule", Ticket.Kind.DEPLOY, None),
    ("deploy", Ticket.Kind.DEPLOY, None),  # queued: "started" follows
    ("cancel", Ticket.Kind.DEPLOY, None),
    ("edit", Ticket.Kind.DEPLOY, None),
])
def test_ticket_actions_map_to_notification_events(action, kind, expected):
    assert event_for(action, kind) == expected


# --- Each vendor, for real ---------------------------------------------------------

@pytest.mark.parametrize("kind", [Kind.DINGTALK, Kind.FEISHU, Kind.WECOM, Kind.SLACK])
def test_each_robot_accepts_the_signed_message_that_names_the_deploy(world, receiver, inline_worker, settings,  # noqa: F811
                                                                    kind):
    settings.WALLE_BASE_URL = "https://walle.example.com/"
    make_channel(kind, receiver, project=world.project)
    ticket, event = deployed_ticket(world)
    [delivery] = sending.notify_event(event.pk)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.http_status) == (D.SENT, 1, 200), delivery.last_error
    [got] = receiver.received
    assert got.verified, got.problem
    text = got.body.decode()
    host = world.project.hosts.get().name
    for expected in ("Walle [production] website", f"#{ticket.pk}", ticket.title, "maintainer", "master",
                     ticket.commit[:8], host, "12.0s", f"https://walle.example.com/tickets/{ticket.pk}/",
                     str(Event.SUCCEEDED.label)):
        assert expected in text, (expected, text)


def test_the_json_webhook_is_signed_over_timestamp_and_body_and_carries_the_fields(world, receiver, inline_worker,  # noqa: F811
                                                                                  settings):
    settings.WALLE_BASE_URL = "https://walle.example.com"
    make_channel(Kind.WEBHOOK, receiver, project=world.project)
    ticket, event = deployed_ticket(world, kind=Ticket.Kind.ROLLBACK)
    [delivery] = sending.notify_event(event.pk)
    [got] = receiver.received
    assert got.verified, got.problem
    assert got.headers["x-walle-event"] == Event.ROLLED_BACK
    assert got.headers["x-walle-delivery"] == str(delivery.pk)
    body = got.json
    assert (body["event"], body["project_slug"], body["environment"], body["ticket_id"]) == (
        "rolled_back", "website", "production", ticket.pk)
    assert (body["who"], body["ref"], body["commit"], body["duration"]) == ("maintainer", "master", ticket.commit, 12.0)
    assert body["hosts"] == [world.project.hosts.get().name]
    assert body["url"] == f"https://walle.example.com/tickets/{ticket.pk}/"
    assert Delivery.objects.get(pk=delivery.pk).status == D.SENT


def test_a_webhook_signature_with_another_secret_is_refused_by_the_receiver(world, receiver, inline_worker):  # noqa: F811
    channel = make_channel(Kind.WEBHOOK, receiver, project=world.project)
    channel.set_secret("not-the-receivers-secret")
    channel.save()
    _, event = deployed_ticket(world)
    [delivery] = sending.notify_event(event.pk)
    delivery.refresh_from_db()
    assert not receiver.received[0].verified
    assert (delivery.status, delivery.http_status, delivery.attempts) == (D.FAILED, 401, 1)  # a 4xx is not retried


def test_a_robot_that_refuses_the_signature_fails_the_delivery_without_retrying(world, receiver, inline_worker):  # noqa: F811
    channel = make_channel(Kind.DINGTALK, receiver, project=world.project)
    channel.set_secret("SEC-wrong")
    channel.save()
    _, event = deployed_ticket(world)
    [delivery] = sending.notify_event(event.pk)
    delivery.refresh_from_db()
    assert len(receiver.received) == 1 and receiver.received[0].problem == "sign"
    assert delivery.status == D.FAILED
    assert "310000" in delivery.last_error  # the robot's own error code, though HTTP said 200
    assert KEY not in delivery.last_error and "SEC-wrong" not in delivery.last_error


def test_email_goes_to_every_recipient_through_django_mail(world, receiver, inline_worker, settings):  # noqa: F811
    settings.WALLE_BASE_URL = "https://walle.example.com"
    make_channel(Kind.EMAIL, receiver, project=world.project, recipients="ops@example.com, lead@example.com")
    ticket, event = deployed_ticket(world)
    [delivery] = sending.notify_event(event.pk)
    assert Delivery.objects.get(pk=delivery.pk).status == D.SENT
    [message] = mail.outbox
    assert message.to == ["ops@example.com", "lead@example.com"]
    assert "website" in message.subject and f"#{ticket.pk}" in message.subject
    assert f"https://walle.example.com/tickets/{ticket.pk}/" in message.body and "maintainer" in message.body


# --- Retries, timeouts, redirects, secrets in errors ---------------------------------

def test_server_errors_are_retried_until_the_receiver_answers(world, receiver, no_backoff):  # noqa: F811
    make_channel(Kind.WEBHOOK, receiver, project=world.project)
    _, event = deployed_ticket(world)
    receiver.script = [(500, b"busy", 0.0), (503, b"busy", 0.0)]
    [delivery] = _queued(event)
    assert sending.deliver(delivery.pk) == "sent"
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.http_status) == (D.SENT, 3, 204)
    assert len(receiver.received) == 3 and all(r.verified for r in receiver.received)


def test_a_receiver_that_never_answers_fails_after_the_bounded_attempts(world, receiver, no_backoff,  # noqa: F811
                                                                       monkeypatch):
    monkeypatch.setattr(sending, "TIMEOUT", 0.3)
    make_channel(Kind.SLACK, receiver, project=world.project)
    _, event = deployed_ticket(world)
    receiver.script = [(200, b"ok", 1.5)] * 5
    [delivery] = _queued(event)
    started = time.monotonic()
    sending.deliver(delivery.pk)
    assert time.monotonic() - started < 4.0  # waiting for each answer would take 4.5 s
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (D.FAILED, sending.ATTEMPTS)
    assert "no answer within 0.3s" in delivery.last_error
    assert len(receiver.received) == sending.ATTEMPTS


def test_a_redirect_is_not_followed(world, receiver):  # noqa: F811
    channel = make_channel(Kind.WEBHOOK, receiver, project=world.project)
    channel.set_url(receiver.url("redirect"))
    channel.save()
    _, event = deployed_ticket(world)
    [delivery] = _queued(event)
    sending.deliver(delivery.pk)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.http_status) == (D.FAILED, 302)
    assert [r.vendor for r in receiver.received] == ["redirect"]


def test_an_error_that_quotes_the_url_names_neither_key_nor_secret(world, receiver):  # noqa: F811
    channel = make_channel(Kind.WECOM, receiver, project=world.project)
    # Stored before validation existed: http.client quotes such a URL in its error.
    channel.url_encrypted = crypto.encrypt(receiver.url("wecom").replace("key=", "key= ") + " ")
    channel.save()
    _, event = deployed_ticket(world)
    [delivery] = _queued(event)
    sending.deliver(delivery.pk)
    delivery.refresh_from_db()
    assert delivery.status == D.FAILED and delivery.last_error
    assert KEY not in delivery.last_error and SECRET not in delivery.last_error
    assert "[hidden]" in delivery.last_error


def test_a_delivery_is_sent_once_however_often_its_task_runs(world, receiver):  # noqa: F811
    make_channel(Kind.SLACK, receiver, project=world.project)
    _, event = deployed_ticket(world)
    [delivery] = _queued(event)
    assert sending.deliver(delivery.pk) == "sent"
    assert "already" in sending.deliver(delivery.pk)
    assert sending.notify_event(event.pk) == []  # the same event again: no second delivery
    assert len(receiver.received) == 1


def _queued(event: TicketEvent) -> list[Delivery]:
    """Deliveries for ``event`` as notify_event records them, left queued (no worker here)."""
    deliveries = sending.notify_event(event.pk)
    assert all(d.status == D.QUEUED for d in deliveries)
    return deliveries


# --- Which channels hear an event --------------------------------------------------------

def test_environment_defaults_join_project_channels_unless_the_project_turns_them_off(world, receiver):  # noqa: F811
    own = make_channel(Kind.SLACK, receiver, project=world.project)
    default = make_channel(Kind.WEBHOOK, receiver, environment=world.project.environment)
    elsewhere = make_channel(Kind.WECOM, receiver, environment=helpers.environment("test"))
    make_channel(Kind.DINGTALK, receiver, project=world.project, enabled=False)
    make_channel(Kind.FEISHU, receiver, project=world.project, events=[Event.FAILED])
    make_channel(Kind.EMAIL, receiver, project=world.other_project)
    _, event = deployed_ticket(world)
    assert {d.channel for d in _queued(event)} == {own, default}
    assert elsewhere.deliveries.count() == 0

    ProjectNotificationSettings.objects.create(project=world.project, use_environment_defaults=False)
    _, second = deployed_ticket(world)
    assert {d.channel for d in _queued(second)} == {own}


def waiting_rollout(world, receiver, deaf_to: list[str]) -> tuple[Ticket, DeployRun, Channel]:  # noqa: F811
    """A rollout the maintainer started, now at batch 2/3, heard by the project's
    webhook and the environment's DingTalk robot (every event), and by a Slack
    channel that picked only ``deaf_to``."""
    ticket = helpers.make_ticket(world.project, world.users["developer"], S.DEPLOYING)
    run = DeployRun.objects.create(ticket=ticket, number=1, status=DeployRun.Status.RUNNING,
                                   triggered_by=world.users["maintainer"], started_at=timezone.now())
    make_channel(Kind.WEBHOOK, receiver, project=world.project)
    make_channel(Kind.DINGTALK, receiver, environment=world.project.environment)
    picky = make_channel(Kind.SLACK, receiver, project=world.project, events=deaf_to)
    workflow.wait_for_promote(run, 2, 3)  # the worker's move, as the rollout reaches batch 2
    ticket.refresh_from_db()
    return ticket, run, picky


def webhook_and_robot(got: list) -> tuple[dict, str]:
    """What the JSON webhook and the DingTalk robot received of one event, both signed."""
    assert all(r.verified for r in got), [r.problem for r in got]
    [hook] = [r for r in got if r.vendor == "webhook"]
    [robot] = [r for r in got if r.vendor == "dingtalk"]
    assert hook.headers["x-walle-event"] == hook.json["event"]
    return hook.json, robot.json["markdown"]["text"]


@pytest.mark.django_db(transaction=True)
def test_a_rollout_waiting_for_a_promote_tells_the_channels_which_batch_waits(world, receiver, inline_worker,  # noqa: F811
                                                                             settings):
    settings.WALLE_BASE_URL = "https://walle.example.com"
    ticket, _run, deaf = waiting_rollout(world, receiver, [Event.FAILED, Event.SUCCEEDED])

    body, text = webhook_and_robot(receiver.wait(2))
    assert (body["event"], body["status"], body["note"], body["who"]) == (
        "waiting_for_promote", "Waiting for promote", "batch 2/3 waits for a promote", "maintainer")
    assert body["url"] == f"https://walle.example.com/tickets/{ticket.pk}/"
    for expected in ("Waiting for promote", "batch 2/3 waits for a promote", f"/tickets/{ticket.pk}/", ticket.title):
        assert expected in text, (expected, text)
    assert not deaf.deliveries.exists()  # a channel that did not pick the event hears nothing
    assert set(Delivery.objects.filter(ticket=ticket).values_list("event", "status")) == {
        (Event.WAITING_FOR_PROMOTE, D.SENT)}


@pytest.mark.django_db(transaction=True)
def test_a_cancelled_rollout_tells_the_channels_who_cancelled_once_its_hosts_are_back(world, receiver,  # noqa: F811
                                                                                     inline_worker):
    ticket, run, deaf = waiting_rollout(world, receiver, [Event.WAITING_FOR_PROMOTE])
    receiver.wait(3)  # all three heard "waiting for promote"
    workflow.cancel(world.users["developer"], ticket, "the canary looks wrong")
    assert len(receiver.received) == 3  # cancelling: nothing to tell until the hosts are back
    # The worker, having switched the canary back (tasks.run_deploy's last call).
    RunHost.objects.create(run=run, host=world.project.hosts.get(), status=RunHost.Status.REVERTED)
    workflow.finish_run(run, ok=False, error="batch 2/3: cancelled by developer", failed_batch="2/3")

    body, text = webhook_and_robot(receiver.wait(5)[3:])
    # Who cancelled, not who pressed deploy (the maintainer): the switch back is the worker's move.
    assert (body["event"], body["status"], body["note"], body["who"]) == (
        "rollout_cancelled", "Cancelled", "batch 2/3: cancelled by developer", "developer")
    for expected in ("Rollout cancelled, hosts switched back", "batch 2/3: cancelled by developer",
                     f"/tickets/{ticket.pk}/", ticket.title):
        assert expected in text, (expected, text)
    # A channel that did not pick the event hears nothing of it.
    assert list(deaf.deliveries.values_list("event", flat=True)) == [Event.WAITING_FOR_PROMOTE]
    assert sorted(Delivery.objects.filter(ticket=ticket, event=Event.ROLLOUT_CANCELLED).values_list(
        "status", flat=True)) == [D.SENT, D.SENT]


# Each migration that added an event, in order.
EVENT_MIGRATIONS = [("0003_waiting_for_promote", Event.WAITING_FOR_PROMOTE),
                    ("0004_rollout_cancelled", Event.ROLLOUT_CANCELLED)]


def event_migration(name: str):
    import importlib

    return importlib.import_module(f"notifications.migrations.{name}")


@pytest.mark.parametrize(("name", "new"), EVENT_MIGRATIONS)
def test_new_channels_hear_an_added_event_by_default_and_its_migration_adds_it_to_all_event_channels(world, name,
                                                                                                      new):
    from django.apps import apps

    assert new in Channel().events
    migration = event_migration(name)
    assert migration.NEW == new
    earlier = sorted(migration.EARLIER)
    everything = Channel.objects.create(name="all", kind=Kind.EMAIL, project=world.project, events=earlier)
    picked = Channel.objects.create(name="failures", kind=Kind.EMAIL, project=world.project, events=[Event.FAILED])
    migration.subscribe_channels_that_hear_everything(apps, None)
    everything.refresh_from_db()
    picked.refresh_from_db()
    assert everything.events == [*earlier, new]
    assert picked.events == [Event.FAILED]  # a channel that picked some keeps its pick
    migration.unsubscribe(apps, None)
    everything.refresh_from_db()
    assert everything.events == earlier


def test_each_event_migration_knows_every_event_before_it():
    known = set(event_migration(EVENT_MIGRATIONS[0][0]).EARLIER)
    for name, new in EVENT_MIGRATIONS:
        assert set(event_migration(name).EARLIER) == known, name
        known |= {new}
    assert known == set(all_events())  # a new event needs its own migration, listed above


# --- Never in the workflow's way -------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
def test_a_real_ticket_event_reaches_the_receiver_after_the_commit(world, receiver, inline_worker):  # noqa: F811
    make_channel(Kind.WEBHOOK, receiver, project=world.project)
    ticket = workflow.submit(world.users["developer"], world.project, title="ship search", ref="master",
                             commit="d" * 40)
    [got] = receiver.wait(1)
    assert got.verified and got.json["event"] == Event.SUBMITTED and got.json["who"] == "developer"
    workflow.reject(world.users["owner"], ticket, "no tests for the search page")
    second = receiver.wait(2)[1]
    assert second.json["event"] == Event.REJECTED and second.json["note"] == "no tests for the search page"
    assert list(Delivery.objects.filter(ticket=ticket).values_list("status", flat=True)) == [D.SENT, D.SENT]


@pytest.mark.django_db(transaction=True)
def test_a_broken_broker_neither_fails_nor_undoes_the_workflow_action(world, receiver, monkeypatch):  # noqa: F811
    make_channel(Kind.WEBHOOK, receiver, project=world.project)

    def broker_down(*args, **kwargs):
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr("django_q.tasks.async_task", broker_down)
    ticket = workflow.submit(world.users["developer"], world.project, title="ship anyway", ref="master",
                             commit="e" * 40)
    ticket.refresh_from_db()
    assert ticket.status == S.PENDING
    delivery = Delivery.objects.get(ticket=ticket)
    assert delivery.status == D.FAILED and "could not be queued" in delivery.last_error


@pytest.mark.django_db(transaction=True)
def test_a_notification_bug_never_reaches_the_workflow_caller(world, receiver, monkeypatch):  # noqa: F811
    make_channel(Kind.WEBHOOK, receiver, project=world.project)

    def bug(*args, **kwargs):
        raise RuntimeError("a bug in notifications")

    monkeypatch.setattr(sending, "channels_for", bug)
    ticket = workflow.submit(world.users["developer"], world.project, title="ship", ref="master", commit="f" * 40)
    assert Ticket.objects.get(pk=ticket.pk).status == S.PENDING
    assert not Delivery.objects.exists()


def test_an_event_where_no_channel_listens_leaves_nothing_to_run_after_the_commit(world, receiver,  # noqa: F811
                                                                                  django_capture_on_commit_callbacks):
    first = helpers.make_ticket(world.project, world.users["developer"])
    make_channel(Kind.SLACK, receiver, project=world.other_project)
    make_channel(Kind.WECOM, receiver, environment=world.project.environment, enabled=False)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        workflow.approve(world.users["owner"], first, version=first.version)
    assert callbacks == []
    make_channel(Kind.WEBHOOK, receiver, environment=world.project.environment)
    second = helpers.make_ticket(world.project, world.users["developer"])
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        workflow.approve(world.users["owner"], second, version=second.version)
    assert len(callbacks) == 1


def test_a_ticket_title_cannot_ping_a_whole_slack_channel(world, receiver, inline_worker):  # noqa: F811
    make_channel(Kind.SLACK, receiver, project=world.project)
    ticket = helpers.make_ticket(world.project, world.users["developer"], title="hotfix <!channel> & <@U123>")
    event = ticket.events.get()
    sending.notify_event(event.pk)
    text = receiver.received[0].json["text"]
    assert "hotfix &lt;!channel&gt; &amp; &lt;@U123&gt;" in text and "<!channel>" not in text


def test_a_channel_no_configured_key_can_decrypt_fails_its_delivery_clearly(world, receiver, settings):  # noqa: F811
    from cryptography.fernet import Fernet

    make_channel(Kind.WEBHOOK, receiver, project=world.project)
    _, event = deployed_ticket(world)
    [delivery] = _queued(event)
    settings.WALLE_KEY_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]  # the key file was lost
    sending.deliver(delivery.pk)
    delivery.refresh_from_db()
    assert delivery.status == D.FAILED and "cannot decrypt the channel's URL or secret" in delivery.last_error
    assert not receiver.received


def test_a_delivery_abandoned_mid_send_is_failed_by_the_next_delivery_task(world, receiver):  # noqa: F811
    make_channel(Kind.SLACK, receiver, project=world.project)
    _, first = deployed_ticket(world)
    _, second = deployed_ticket(world)
    [abandoned] = _queued(first)
    [recent] = _queued(second)
    # A worker claimed the first one ten minutes ago and died; the second is being sent right now.
    Delivery.objects.filter(pk=abandoned.pk).update(status=D.SENDING,
                                                    started_at=timezone.now() - timedelta(minutes=10))
    Delivery.objects.filter(pk=recent.pk).update(status=D.SENDING, started_at=timezone.now())
    _, third = deployed_ticket(world)
    [fresh] = _queued(third)
    assert sending.deliver(fresh.pk) == "sent"
    abandoned.refresh_from_db()
    recent.refresh_from_db()
    assert abandoned.status == D.FAILED and "abandoned" in abandoned.last_error
    assert recent.status == D.SENDING


def test_a_late_message_names_the_status_the_event_set_not_the_current_one(world, receiver, inline_worker):  # noqa: F811
    make_channel(Kind.WEBHOOK, receiver, project=world.project)
    ticket = helpers.make_ticket(world.project, world.users["developer"])  # its "submit" event: pending approval
    Ticket.objects.filter(pk=ticket.pk).update(status=S.APPROVED)  # approved before the message went out
    sending.notify_event(ticket.events.get().pk)
    assert receiver.received[0].json["status"] == str(S.PENDING.label)
