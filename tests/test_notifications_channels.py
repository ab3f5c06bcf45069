"""Configuring channels in the admin and the API: who may, secrets written
once and never shown again, bad input refused, the test button, and where
deliveries are shown (ticket page, admin, API)."""

from __future__ import annotations

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from accounts import grants
from accounts.permissions import Action
from notifications.models import Channel, Delivery, Event, Kind
from projects.models import Project
from tests.notify_receiver import KEY, SECRET, receiver  # noqa: F401 - the receiver fixture

from . import helpers
from .test_notifications_delivery import make_channel

ALL = ["guest", "reporter", "developer", "maintainer", "owner", "outsider", "granted", "admin"]
DETAILS = {"reporter", "developer", "maintainer", "owner", "granted", "admin"}
CONFIGURES = {"maintainer", "owner", "admin"}
INLINE = {"deliveries-TOTAL_FORMS": "0", "deliveries-INITIAL_FORMS": "0", "deliveries-MIN_NUM_FORMS": "0",
          "deliveries-MAX_NUM_FORMS": "0"}


@pytest.fixture
def w(world):
    # "granted" holds one object permission (approve) on the project and no membership.
    grants.grant(world.users["owner"], world.users["granted"], Action.APPROVE, world.project)
    return world


def login(client, user):
    client.force_login(user)
    return client


def form(receiver, **overrides) -> dict:  # noqa: F811
    data = {"name": "team chat", "kind": Kind.DINGTALK, "project": "", "environment": "", "enabled": "on",
            "events": [Event.SUBMITTED, Event.FAILED], "recipients": "", "url": receiver.url("dingtalk"),
            "secret": SECRET, **INLINE}
    data.update(overrides)
    return data


# --- Admin ------------------------------------------------------------------------------

def test_a_maintainer_adds_a_channel_whose_url_and_secret_are_stored_encrypted_and_never_shown(client, w, receiver):  # noqa: F811
    admin = login(client, w.users["maintainer"])
    response = admin.post(reverse("admin:notifications_channel_add"), form(receiver, project=w.project.pk))
    assert response.status_code == 302, response.content.decode()[-3000:]
    channel = Channel.objects.get(name="team chat")
    assert KEY not in channel.url_encrypted and SECRET not in channel.secret_encrypted
    assert (channel.decrypted_url(), channel.decrypted_secret()) == (receiver.url("dingtalk"), SECRET)
    assert channel.events == [Event.SUBMITTED, Event.FAILED]
    page = admin.get(reverse("admin:notifications_channel_change", args=[channel.pk])).content.decode()
    assert KEY not in page and SECRET not in page
    assert f"http://127.0.0.1:{receiver.port}/…" in page and "set (never shown)" in page
    assert KEY not in admin.get(reverse("admin:notifications_channel_changelist")).content.decode()


def test_saving_with_the_secret_fields_left_empty_keeps_the_stored_ones(client, w, receiver):  # noqa: F811
    channel = make_channel(Kind.FEISHU, receiver, project=w.project)
    response = login(client, w.users["maintainer"]).post(
        reverse("admin:notifications_channel_change", args=[channel.pk]),
        form(receiver, kind=Kind.FEISHU, project=w.project.pk, name="renamed", url="", secret=""),
    )
    assert response.status_code == 302, response.content.decode()[-3000:]
    channel.refresh_from_db()
    assert channel.name == "renamed"
    assert (channel.decrypted_url(), channel.decrypted_secret()) == (receiver.url("feishu"), SECRET)


@pytest.mark.parametrize(("field", "value", "error"), [
    ("url", "ftp://127.0.0.1/hook", "Enter an http:// or https:// URL with a host."),
    ("url", "javascript:alert(1)", "Enter an http:// or https:// URL with a host."),
    ("url", "", "This kind of channel needs its webhook URL."),
    ("secret", "", "This kind of channel needs its signing secret."),
    ("events", ["deploy_everything"], "Select a valid choice."),
    ("events", [], "Choose at least one event."),
])
def test_bad_input_is_refused_with_a_clear_error_and_nothing_is_saved(client, w, receiver, field, value, error):  # noqa: F811
    response = login(client, w.users["maintainer"]).post(
        reverse("admin:notifications_channel_add"), form(receiver, project=w.project.pk, **{field: value}))
    assert response.status_code == 200
    assert error in response.content.decode()
    assert not Channel.objects.exists()


def test_an_email_channel_needs_valid_addresses(client, w, receiver):  # noqa: F811
    data = form(receiver, kind=Kind.EMAIL, project=w.project.pk, url="", secret="", recipients="ops@example.com, nope")
    response = login(client, w.users["maintainer"]).post(reverse("admin:notifications_channel_add"), data)
    assert "nope is not an email address." in response.content.decode()
    assert not Channel.objects.exists()


def test_only_platform_admins_make_environment_defaults(client, w, receiver):  # noqa: F811
    production = w.project.environment.pk
    refused = login(client, w.users["owner"]).post(
        reverse("admin:notifications_channel_add"), form(receiver, environment=production))
    assert refused.status_code == 200 and not Channel.objects.exists()
    client.logout()
    allowed = login(client, w.users["admin"]).post(
        reverse("admin:notifications_channel_add"), form(receiver, environment=production))
    assert allowed.status_code == 302
    assert Channel.objects.get().environment_id == production


@pytest.mark.parametrize("persona", ALL)
def test_only_those_who_configure_the_project_change_its_channel(client, w, receiver, persona):  # noqa: F811
    channel = make_channel(Kind.SLACK, receiver, project=w.project)
    login(client, w.users[persona]).post(
        reverse("admin:notifications_channel_change", args=[channel.pk]),
        form(receiver, kind=Kind.SLACK, project=w.project.pk, name=f"by {persona}", url="", secret=""),
    )
    channel.refresh_from_db()
    assert (channel.name == f"by {persona}") is (persona in CONFIGURES)


@pytest.mark.parametrize("persona", ["maintainer", "owner", "admin"])
def test_nobody_but_platform_admins_changes_an_environment_default(client, w, receiver, persona):  # noqa: F811
    channel = make_channel(Kind.SLACK, receiver, environment=w.project.environment)
    login(client, w.users[persona]).post(
        reverse("admin:notifications_channel_change", args=[channel.pk]),
        form(receiver, kind=Kind.SLACK, environment=channel.environment_id, name="changed", url="", secret=""),
    )
    channel.refresh_from_db()
    assert (channel.name == "changed") is (persona == "admin")


def test_the_test_button_sends_at_once_and_only_for_those_who_configure(client, w, receiver):  # noqa: F811
    channel = make_channel(Kind.WEBHOOK, receiver, project=w.project)
    url = reverse("admin:notifications_channel_test", args=[channel.pk])
    login(client, w.users["developer"]).post(url)
    assert not Delivery.objects.exists() and not receiver.received
    response = login(client, w.users["maintainer"]).post(url, follow=True)
    assert "Test message sent to webhook channel (HTTP 204)." in response.content.decode()
    delivery = Delivery.objects.get()
    assert (delivery.event, delivery.status, delivery.requested_by) == (Event.TEST, Delivery.Status.SENT,
                                                                       w.users["maintainer"])
    [got] = receiver.received
    assert got.verified and got.json["event"] == Event.TEST and got.json["who"] == "maintainer"


@pytest.mark.parametrize("persona", ALL)
def test_the_delivery_history_is_read_only_and_scoped(client, w, receiver, persona):  # noqa: F811
    channel = make_channel(Kind.SLACK, receiver, project=w.project)
    ticket = helpers.make_ticket(w.project, w.users["developer"], title="ship the cart")
    delivery = Delivery.objects.create(channel=channel, channel_name=channel.name, kind=channel.kind, ticket=ticket,
                                       event=Event.SUBMITTED, status=Delivery.Status.FAILED, last_error="HTTP 500")
    admin = login(client, w.users[persona])
    listing = admin.get(reverse("admin:notifications_delivery_changelist")).content.decode()
    assert ("HTTP 500" in listing) is (persona in DETAILS)
    admin.post(reverse("admin:notifications_delivery_change", args=[delivery.pk]), {"status": "sent"})
    assert admin.post(reverse("admin:notifications_delivery_delete", args=[delivery.pk]), {"post": "yes"}).status_code \
        in (302, 403)
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.FAILED


def test_a_project_can_turn_off_its_environments_defaults_in_the_admin(client, w):
    response = login(client, w.users["maintainer"]).post(
        reverse("admin:notifications_projectnotificationsettings_add"), {"project": w.project.pk})
    assert response.status_code == 302
    assert w.project.notification_settings.use_environment_defaults is False
    client.logout()
    refused = login(client, w.users["outsider"]).post(
        reverse("admin:notifications_projectnotificationsettings_add"), {"project": w.project.pk})
    assert refused.status_code in (200, 403)


# --- The ticket page ------------------------------------------------------------------------

@pytest.mark.parametrize("persona", ["guest", "reporter", "maintainer"])
def test_the_ticket_page_shows_each_delivery_to_those_who_see_details(client, w, receiver, persona):  # noqa: F811
    channel = make_channel(Kind.WECOM, receiver, project=w.project)
    ticket = helpers.make_ticket(w.project, w.users["developer"])
    Delivery.objects.create(channel=channel, channel_name="ops robot", kind=channel.kind, ticket=ticket,
                            event=Event.SUBMITTED, status=Delivery.Status.FAILED, attempts=3, http_status=502,
                            last_error="HTTP 502")
    page = login(client, w.users[persona]).get(reverse("ticket_detail", args=[ticket.pk])).content.decode()
    shown = 'id="notifications"' in page
    assert shown is (persona != "guest")
    if shown:
        assert "ops robot" in page and "HTTP 502" in page and "Failed" in page


# --- API --------------------------------------------------------------------------------------

def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_the_api_creates_a_channel_and_never_returns_its_secrets(w, receiver):  # noqa: F811
    created = api(w.users["maintainer"]).post("/api/notifications/channels/", {
        "name": "deploys", "kind": "webhook", "project": w.project.pk, "url": receiver.url("webhook"),
        "secret": SECRET, "events": ["failed", "rolled_back"],
    }, format="json")
    assert created.status_code == 201, created.content
    body = created.content.decode()
    assert KEY not in body and SECRET not in body
    assert created.json()["has_secret"] is True and created.json()["url_hint"].startswith("http://127.0.0.1:")
    listed = api(w.users["reporter"]).get("/api/notifications/channels/")
    assert [c["name"] for c in listed.json()["results"]] == ["deploys"] and KEY not in listed.content.decode()
    channel = Channel.objects.get()
    assert channel.decrypted_secret() == SECRET and channel.events == ["failed", "rolled_back"]


@pytest.mark.parametrize(("persona", "code"), [("developer", 400), ("outsider", 400), ("maintainer", 201)])
def test_the_api_creates_project_channels_only_for_those_who_configure(w, receiver, persona, code):  # noqa: F811
    response = api(w.users[persona]).post("/api/notifications/channels/", {
        "name": "x", "kind": "slack", "project": w.project.pk, "url": receiver.url("slack")}, format="json")
    assert response.status_code == code, response.content
    assert Channel.objects.exists() is (code == 201)


def test_the_api_refuses_bad_input_clearly(w, receiver):  # noqa: F811
    client = api(w.users["maintainer"])
    no_secret = client.post("/api/notifications/channels/", {
        "name": "x", "kind": "dingtalk", "project": w.project.pk, "url": receiver.url("dingtalk")}, format="json")
    assert no_secret.status_code == 400 and "signing secret" in no_secret.content.decode()
    bad_url = client.post("/api/notifications/channels/", {
        "name": "x", "kind": "slack", "project": w.project.pk, "url": "file:///etc/passwd"}, format="json")
    assert bad_url.status_code == 400 and "http://" in bad_url.content.decode()
    default = client.post("/api/notifications/channels/", {
        "name": "x", "kind": "slack", "environment": w.project.environment_id, "url": receiver.url("slack")},
        format="json")
    assert default.status_code == 400
    assert not Channel.objects.exists()


def test_the_api_changes_deletes_and_tests_only_for_those_who_configure(w, receiver):  # noqa: F811
    channel = make_channel(Kind.SLACK, receiver, project=w.project)
    url = f"/api/notifications/channels/{channel.pk}/"
    assert api(w.users["developer"]).patch(url, {"name": "mine"}, format="json").status_code == 403
    assert api(w.users["developer"]).post(url + "test/").status_code == 403
    assert api(w.users["developer"]).delete(url).status_code == 403
    assert api(w.users["guest"]).get(url).status_code == 404
    tested = api(w.users["maintainer"]).post(url + "test/")
    assert tested.status_code == 200 and tested.json()["status"] == "sent" and len(receiver.received) == 1
    assert api(w.users["maintainer"]).patch(url, {"name": "ops"}, format="json").json()["name"] == "ops"
    channel.refresh_from_db()
    assert channel.decrypted_url() == receiver.url("slack")  # a PATCH without url keeps it
    assert api(w.users["maintainer"]).delete(url).status_code == 204
    assert not Channel.objects.exists()


@pytest.mark.parametrize("persona", ALL)
def test_the_api_lists_a_tickets_deliveries_to_those_who_see_its_details(w, receiver, persona):  # noqa: F811
    channel = make_channel(Kind.SLACK, receiver, project=w.project)
    ticket = helpers.make_ticket(w.project, w.users["developer"])
    Delivery.objects.create(channel=channel, channel_name=channel.name, kind=channel.kind, ticket=ticket,
                            event=Event.SUBMITTED, status=Delivery.Status.SENT, http_status=200)
    response = api(w.users[persona]).get(f"/api/notifications/deliveries/?ticket={ticket.pk}")
    assert response.status_code == 200
    events = [d["event"] for d in response.json()["results"]]
    assert events == (["submitted"] if persona in DETAILS else [])
    assert api(w.users[persona]).get("/api/notifications/deliveries/?ticket=x").status_code == 400


def test_the_api_schema_lists_the_notification_endpoints_without_warnings(tmp_path, db):
    from django.core.management import call_command

    out = tmp_path / "schema.yml"
    call_command("spectacular", "--fail-on-warn", "--file", str(out))
    text = out.read_text()
    for endpoint in ("/api/notifications/channels/", "/api/notifications/channels/{id}/test/",
                     "/api/notifications/deliveries/", "/api/notifications/project-settings/"):
        assert f"{endpoint}:" in text
    assert "NotificationKindEnum" in text and "DeliveryStatusEnum" in text


@pytest.mark.parametrize("persona", ALL)
def test_a_channel_reads_for_those_who_see_details_and_never_shows_its_secrets(client, w, receiver, persona):  # noqa: F811
    channel = make_channel(Kind.DINGTALK, receiver, project=w.project)
    response = login(client, w.users[persona]).get(reverse("admin:notifications_channel_change", args=[channel.pk]))
    body = response.content.decode()
    assert KEY not in body and SECRET not in body
    if persona in DETAILS:
        assert response.status_code == 200 and "dingtalk channel" in body
        assert ('name="_save"' in body) is (persona in CONFIGURES)
        assert ('id="btn-send-test"' in body) is (persona in CONFIGURES)
    else:
        assert response.status_code in (302, 403)


def test_a_url_that_cannot_be_read_is_refused_clearly(client, w, receiver):  # noqa: F811
    response = login(client, w.users["maintainer"]).post(
        reverse("admin:notifications_channel_add"), form(receiver, project=w.project.pk, url="http://[::1/hook"))
    assert "This URL cannot be read; check the host and port." in response.content.decode()
    assert not Channel.objects.exists()


def test_key_rotation_re_encrypts_channel_urls_and_secrets(w, receiver, settings):  # noqa: F811
    import io

    from cryptography.fernet import Fernet
    from django.core.management import call_command

    channel = make_channel(Kind.FEISHU, receiver, project=w.project)
    old = settings.WALLE_KEY_ENCRYPTION_KEYS[0]
    settings.WALLE_KEY_ENCRYPTION_KEYS = [Fernet.generate_key().decode(), old]
    out = io.StringIO()
    call_command("walle_rotate_keys", stdout=out)
    assert "Re-encrypted 2 other stored secret(s)" in out.getvalue()
    settings.WALLE_KEY_ENCRYPTION_KEYS = settings.WALLE_KEY_ENCRYPTION_KEYS[:1]  # the old key is gone
    channel.refresh_from_db()
    assert (channel.decrypted_url(), channel.decrypted_secret()) == (receiver.url("feishu"), SECRET)


@pytest.mark.parametrize(("persona", "code"), [("reporter", 400), ("outsider", 400), ("maintainer", 201)])
def test_the_api_turns_environment_defaults_off_only_for_those_who_configure(w, persona, code):
    response = api(w.users[persona]).post("/api/notifications/project-settings/", {
        "project": w.project.pk, "use_environment_defaults": False}, format="json")
    assert response.status_code == code, response.content
    stored = list(Project.objects.filter(notification_settings__use_environment_defaults=False))
    assert stored == ([w.project] if code == 201 else [])
    if code == 201:
        url = f"/api/notifications/project-settings/{response.json()['id']}/"
        assert api(w.users["reporter"]).get(url).json()["use_environment_defaults"] is False
        refused = api(w.users["reporter"]).patch(url, {"use_environment_defaults": True}, format="json")
        assert refused.status_code == 403
        assert api(w.users["guest"]).get(url).status_code == 404


def test_a_channel_page_lists_only_its_newest_deliveries(client, w, receiver):  # noqa: F811
    channel = make_channel(Kind.SLACK, receiver, project=w.project)
    for n in range(25):
        Delivery.objects.create(channel=channel, channel_name=channel.name, kind=channel.kind, event=Event.TEST,
                                status=Delivery.Status.FAILED, last_error=f"error number {n:02d}")
    page = login(client, w.users["maintainer"]).get(
        reverse("admin:notifications_channel_change", args=[channel.pk])).content.decode()
    assert "error number 24" in page and "error number 05" in page
    assert "error number 04" not in page
