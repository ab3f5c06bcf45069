"""Reading what each vendor sends (pure functions, no database or network)."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from projects.models import RepoMode
from webhooks.vendors import PayloadError, Vendor, detect, parse_push, verify

SHA = "a" * 40
TAG_OBJECT = "b" * 40


def test_gitea_is_told_apart_although_it_also_sends_githubs_headers():
    assert detect({"X-GitHub-Event": "push", "X-Gitea-Event": "push"}) == Vendor.GITEA
    assert detect({"X-GitHub-Event": "push"}) == Vendor.GITHUB
    assert detect({"X-Gitlab-Token": "t"}) == Vendor.GITLAB
    assert detect({"User-Agent": "curl"}) is None


def test_signatures_are_checked_per_vendor_scheme():
    body, secret = b'{"ref": "refs/heads/main"}', "s3cret"
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert verify(Vendor.GITHUB, {"X-Hub-Signature-256": f"sha256={digest}"}, body, secret)
    assert not verify(Vendor.GITHUB, {"X-Hub-Signature-256": digest}, body, secret)  # prefix required
    assert verify(Vendor.GITEA, {"X-Gitea-Signature": digest}, body, secret)
    assert not verify(Vendor.GITEA, {"X-Gitea-Signature": digest}, body + b" ", secret)
    assert verify(Vendor.GITLAB, {"X-Gitlab-Token": secret}, body, secret)
    assert not verify(Vendor.GITLAB, {"X-Gitlab-Token": "s3cr\u00e9t"}, body, secret)  # non-ASCII never raises
    assert not verify(Vendor.GITLAB, {}, body, secret)
    assert not verify(Vendor.GITLAB, {"X-Gitlab-Token": ""}, body, "")  # a webhook without a secret


def test_a_github_annotated_tag_push_names_the_tag_object_and_the_commit():
    body = json.dumps({"ref": "refs/tags/v1.0", "before": "0" * 40, "after": TAG_OBJECT, "created": True,
                       "head_commit": {"id": SHA}, "pusher": {"name": "al\x1bice"}}).encode()
    push = parse_push(Vendor.GITHUB, "push", body)
    assert (push.ref_kind, push.name, push.after, push.head) == (RepoMode.TAG, "v1.0", TAG_OBJECT, SHA)
    assert push.created and not push.deleted and push.pusher == "alice"  # control characters dropped


def test_a_gitlab_branch_deletion_and_a_new_branch():
    deleted = parse_push(Vendor.GITLAB, "Push Hook", json.dumps(
        {"ref": "refs/heads/x", "before": SHA, "after": "0" * 40, "checkout_sha": None}).encode())
    assert deleted.deleted and deleted.head == ""
    new = parse_push(Vendor.GITLAB, "Push Hook", json.dumps(
        {"ref": "refs/heads/x", "before": "0" * 40, "after": SHA, "user_username": "bob"}).encode())
    assert new.created and new.pusher == "bob" and new.ref_kind == RepoMode.BRANCH


def test_other_events_are_not_pushes_and_broken_bodies_say_why():
    assert parse_push(Vendor.GITHUB, "ping", b"{}") is None
    assert parse_push(Vendor.GITLAB, "Merge Request Hook", b"{}") is None
    with pytest.raises(PayloadError, match="application/json"):
        parse_push(Vendor.GITHUB, "push", b"payload=%7B%7D")
    with pytest.raises(PayloadError, match="no ref"):
        parse_push(Vendor.GITEA, "push", b"[1, 2]")
    odd = parse_push(Vendor.GITEA, "push", json.dumps({"ref": "refs/notes/x", "after": "nope"}).encode())
    assert odd.ref_kind == "" and odd.after == ""
