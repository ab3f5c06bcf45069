"""The webhook endpoint over real HTTP (the live server): each vendor's
signature or token is checked, forged and replayed deliveries change nothing,
and deliveries that ask for no ticket are recorded as ignored. No git here;
tickets from pushes are in test_webhooks_tickets.py."""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.error
import urllib.request
import uuid

import pytest
from django.core.management import call_command

from releases.models import Ticket
from webhooks import config
from webhooks.models import ProjectWebhook, WebhookDelivery

Outcome = WebhookDelivery.Outcome
VENDORS = ["github", "gitlab", "gitea"]
ZERO = "0" * 40


def push_payload(vendor: str, ref: str, after: str, *, before: str = "1" * 40, pusher: str = "alice") -> dict:
    """A push event as the vendor sends it (the fields Walle reads, and some it does not)."""
    if vendor == "gitlab":
        return {"object_kind": "tag_push" if ref.startswith("refs/tags/") else "push", "ref": ref,
                "before": before, "after": after, "checkout_sha": after, "user_username": pusher,
                "project": {"path_with_namespace": "web/website"}, "commits": []}
    who = {"name": pusher} if vendor == "github" else {"login": pusher, "username": pusher}
    return {"ref": ref, "before": before, "after": after, "created": before == ZERO, "deleted": after == ZERO,
            "pusher": who, "head_commit": {"id": after, "message": "ship it"},
            "repository": {"full_name": "web/website"}}


def signed_headers(vendor: str, body: bytes, secret: str, *, event: str = "", delivery: str = "") -> dict:
    """Headers as each vendor signs: HMAC-SHA256 of the body (GitHub, Gitea) or the token itself (GitLab)."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    delivery = delivery or str(uuid.uuid4())
    if vendor == "github":
        return {"X-GitHub-Event": event or "push", "X-GitHub-Delivery": delivery,
                "X-Hub-Signature-256": f"sha256={digest}"}
    if vendor == "gitea":
        # Gitea also sends GitHub's headers; its own signature is the bare hex digest.
        return {"X-Gitea-Event": event or "push", "X-GitHub-Event": event or "push", "X-Gitea-Delivery": delivery,
                "X-Gitea-Signature": digest}
    gitlab_event = "Tag Push Hook" if b'"refs/tags/' in body else "Push Hook"
    return {"X-Gitlab-Event": event or gitlab_event, "X-Gitlab-Event-UUID": delivery, "X-Gitlab-Token": secret}


def post(url: str, body: bytes, headers: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=180) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def deliver(base: str, hook: ProjectWebhook, vendor: str, payload: dict, secret: str, **kw) -> tuple[int, dict]:
    body = json.dumps(payload).encode()
    return post(base + hook.path(), body, signed_headers(vendor, body, secret, **kw))


@pytest.fixture
def hook(transactional_db, world) -> tuple[ProjectWebhook, str]:
    webhook = ProjectWebhook(project=world.project, branch="master")
    secret = config.save_settings(world.users["maintainer"], webhook)
    return webhook, secret


@pytest.mark.parametrize("vendor", VENDORS)
def test_a_wrong_or_missing_signature_is_refused_and_stores_nothing(hook, live_server, vendor):
    webhook, secret = hook
    payload = push_payload(vendor, "refs/heads/master", "2" * 40)
    assert deliver(live_server.url, webhook, vendor, payload, secret + "x")[0] == 403
    body = json.dumps(payload).encode()
    unsigned = {k: v for k, v in signed_headers(vendor, body, secret).items()
                if k not in ("X-Hub-Signature-256", "X-Gitea-Signature", "X-Gitlab-Token")}
    status, answer = post(live_server.url + webhook.path(), body, unsigned)
    assert status == 403 and "signature" in answer["detail"]
    assert not WebhookDelivery.objects.exists() and not Ticket.objects.exists()
    webhook.refresh_from_db()
    assert webhook.rejected_count == 2 and webhook.last_rejected_at is not None
    assert secret not in json.dumps(answer)


def test_a_request_from_no_known_vendor_is_refused(hook, live_server):
    webhook, secret = hook
    status, _ = post(live_server.url + webhook.path(), b'{"ref": "refs/heads/master"}', {"X-Token": secret})
    assert status == 403
    assert not WebhookDelivery.objects.exists()


def test_unknown_or_disabled_webhooks_answer_404(hook, live_server):
    webhook, secret = hook
    payload = push_payload("github", "refs/heads/feature", "2" * 40)
    stranger = ProjectWebhook(hook_id="not-a-real-id", project=webhook.project)
    assert deliver(live_server.url, stranger, "github", payload, secret)[0] == 404
    ProjectWebhook.objects.filter(pk=webhook.pk).update(secret_encrypted="")  # made without config.save_settings
    assert post(live_server.url + webhook.path(), b"{}", {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": ""})[0] == 404
    ProjectWebhook.objects.filter(pk=webhook.pk).update(enabled=False, secret_encrypted=webhook.secret_encrypted)
    assert deliver(live_server.url, webhook, "github", payload, secret)[0] == 404
    assert not WebhookDelivery.objects.exists()


def test_a_body_over_the_cap_is_refused_unread(hook, live_server):
    webhook, secret = hook
    payload = {**push_payload("github", "refs/heads/master", "2" * 40), "padding": "x" * (1024 * 1024)}
    status, answer = deliver(live_server.url, webhook, "github", payload, secret)
    assert status == 413 and "1 MiB" in answer["detail"]
    assert not WebhookDelivery.objects.exists()


@pytest.mark.parametrize("vendor", VENDORS)
def test_pushes_that_ask_for_no_ticket_are_recorded_as_ignored(hook, live_server, vendor):
    webhook, secret = hook
    status, answer = deliver(live_server.url, webhook, vendor,
                             push_payload(vendor, "refs/heads/feature", "2" * 40, pusher="bob"), secret)
    assert status == 200 and answer["outcome"] == Outcome.IGNORED
    assert "branch feature" in answer["detail"]
    deleted = push_payload(vendor, "refs/heads/master", ZERO)
    assert deliver(live_server.url, webhook, vendor, deleted, secret)[1]["outcome"] == Outcome.IGNORED
    rows = list(WebhookDelivery.objects.order_by("pk"))
    assert [(r.vendor, r.ref, r.outcome) for r in rows] == [(vendor, "feature", Outcome.IGNORED),
                                                           (vendor, "master", Outcome.IGNORED)]
    assert rows[0].pusher == "bob" and rows[0].claimed_commit == "2" * 40 and "deleted" in rows[1].detail
    assert not Ticket.objects.exists()


def test_events_that_are_not_pushes_are_ignored(hook, live_server):
    webhook, secret = hook
    status, answer = deliver(live_server.url, webhook, "github", {"zen": "Keep it simple."}, secret, event="ping")
    assert status == 200 and answer["outcome"] == Outcome.IGNORED and "ping" in answer["detail"]
    assert WebhookDelivery.objects.get().event == "ping"


def test_a_replayed_delivery_is_ignored_even_under_a_new_delivery_id(hook, live_server):
    webhook, secret = hook
    payload = push_payload("github", "refs/heads/feature", "3" * 40)
    first = deliver(live_server.url, webhook, "github", payload, secret, delivery="d-1")
    again = deliver(live_server.url, webhook, "github", payload, secret, delivery="d-1")
    # The signature covers the body only: an attacker can change the delivery id header.
    renamed = deliver(live_server.url, webhook, "github", payload, secret, delivery="d-2")
    assert first[1]["outcome"] == Outcome.IGNORED
    assert again == renamed == (200, {"outcome": Outcome.REPLAYED, "delivery": None,
                                      "detail": "This delivery was received before; a replay is ignored."})
    row = WebhookDelivery.objects.get()
    assert row.delivery_id == "d-1" and row.replays == 2 and row.last_replayed_at is not None


def test_without_a_delivery_id_the_body_identifies_the_delivery(hook, live_server):
    webhook, secret = hook
    body = json.dumps(push_payload("gitlab", "refs/heads/feature", "4" * 40)).encode()
    headers = {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": secret}
    assert post(live_server.url + webhook.path(), body, headers)[1]["outcome"] == Outcome.IGNORED
    assert post(live_server.url + webhook.path(), body, headers)[1]["outcome"] == Outcome.REPLAYED
    assert WebhookDelivery.objects.get().delivery_id == "sha256:" + hashlib.sha256(body).hexdigest()


def test_the_api_schema_lists_the_webhook_endpoint(tmp_path, db):
    out = tmp_path / "schema.yml"
    call_command("spectacular", "--fail-on-warn", "--file", str(out))
    assert "/api/webhooks/{hook_id}/" in out.read_text()


def test_a_flood_is_throttled_before_it_is_even_counted(hook, client):
    webhook, _ = hook
    answers = [client.post(webhook.path(), b"{}", content_type="application/json").status_code for _ in range(61)]
    assert answers == [403] * 60 + [429]
    webhook.refresh_from_db()
    assert webhook.rejected_count == 60
