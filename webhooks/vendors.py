"""What GitHub, GitLab and Gitea send, read without Django's database: which
vendor a request comes from, whether its signature or token is right, and the
push it describes. Pure functions over headers and body bytes."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

from django.utils.translation import gettext as _

from projects.models import RepoMode

from .models import Vendor

SHA_RE = re.compile(r"[0-9a-f]{40}")
ZERO_SHA = "0" * 40
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

# The header each vendor names its event in, and the one with its delivery id.
EVENT_HEADER = {Vendor.GITHUB: "X-GitHub-Event", Vendor.GITEA: "X-Gitea-Event", Vendor.GITLAB: "X-Gitlab-Event"}
DELIVERY_HEADER = {
    Vendor.GITHUB: "X-GitHub-Delivery", Vendor.GITEA: "X-Gitea-Delivery", Vendor.GITLAB: "X-Gitlab-Event-UUID",
}
# Events that describe a push of a branch or a tag; everything else is recorded and ignored.
PUSH_EVENTS = {
    Vendor.GITHUB: {"push"}, Vendor.GITEA: {"push"}, Vendor.GITLAB: {"Push Hook", "Tag Push Hook"},
}


class PayloadError(ValueError):
    """The body is not a push payload we can read; the message is safe to show."""


@dataclass(frozen=True)
class Push:
    ref_kind: str  # RepoMode.BRANCH or RepoMode.TAG, "" for any other ref
    name: str  # branch or tag name without refs/heads/ or refs/tags/
    after: str  # the ref's new value per the payload
    head: str  # the commit the payload names besides (head_commit / checkout_sha)
    created: bool
    deleted: bool
    pusher: str


def detect(headers: Mapping[str, str]) -> Vendor | None:
    # Gitea also sends GitHub's headers (for compatibility), so it is asked first.
    if "X-Gitea-Event" in headers or "X-Gitea-Signature" in headers:
        return Vendor.GITEA
    if "X-Gitlab-Event" in headers or "X-Gitlab-Token" in headers:
        return Vendor.GITLAB
    if "X-GitHub-Event" in headers or "X-Hub-Signature-256" in headers:
        return Vendor.GITHUB
    return None


def _same(expected: str, given: str) -> bool:
    # Bytes, so a non-ASCII header cannot make compare_digest raise.
    return hmac.compare_digest(expected.encode(), given.encode())


def signature(secret: str, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``body``: what GitHub and Gitea sign with."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(vendor: Vendor, headers: Mapping[str, str], body: bytes, secret: str) -> bool:
    """Is the request signed (GitHub, Gitea) or tokened (GitLab) with ``secret``?
    Compared in constant time; a missing header is a wrong one."""
    if not secret:
        return False  # an empty GitLab token would otherwise match an empty secret
    if vendor == Vendor.GITLAB:
        return _same(secret, headers.get("X-Gitlab-Token", ""))
    if vendor == Vendor.GITEA:
        return _same(signature(secret, body), headers.get("X-Gitea-Signature", ""))
    return _same("sha256=" + signature(secret, body), headers.get("X-Hub-Signature-256", ""))


def event_of(vendor: Vendor, headers: Mapping[str, str]) -> str:
    return clean_text(headers.get(EVENT_HEADER[vendor], ""), 64)


def delivery_id_of(vendor: Vendor, headers: Mapping[str, str]) -> str:
    return clean_text(headers.get(DELIVERY_HEADER[vendor], ""), 100)


def clean_text(value: object, limit: int) -> str:
    """Payload text for display: a string without control characters, capped."""
    return _CONTROL.sub("", value if isinstance(value, str) else "")[:limit]


def _sha(value: object) -> str:
    return value if isinstance(value, str) and SHA_RE.fullmatch(value) else ""


def _pusher(vendor: Vendor, payload: dict) -> str:
    if vendor == Vendor.GITLAB:
        name = payload.get("user_username") or payload.get("user_name")
    else:
        pusher = payload.get("pusher") if isinstance(payload.get("pusher"), dict) else {}
        name = pusher.get("login") or pusher.get("username") or pusher.get("name")
    return clean_text(name, 100)


def parse_push(vendor: Vendor, event: str, body: bytes) -> Push | None:
    """The push a payload describes; None for an event that is not a push.
    Raises PayloadError for a body that is not a push payload."""
    if event not in PUSH_EVENTS[vendor]:
        return None
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise PayloadError(_("The body is not JSON; set the webhook's content type to application/json.")) from None
    if not isinstance(payload, dict) or not isinstance(payload.get("ref"), str):
        raise PayloadError(_("The payload names no ref."))
    ref = payload["ref"]
    kind, name = "", ref
    for prefix, ref_kind in (("refs/heads/", RepoMode.BRANCH), ("refs/tags/", RepoMode.TAG)):
        if ref.startswith(prefix):
            kind, name = ref_kind, ref.removeprefix(prefix)
    head = payload.get("head_commit") if isinstance(payload.get("head_commit"), dict) else {}
    after = _sha(payload.get("after"))
    before = _sha(payload.get("before"))
    return Push(
        ref_kind=kind, name=clean_text(name, 255), after=after,
        head=_sha(head.get("id")) or _sha(payload.get("checkout_sha")),
        created=payload.get("created") is True or before == ZERO_SHA,
        deleted=payload.get("deleted") is True or after == ZERO_SHA,
        pusher=_pusher(vendor, payload),
    )
