"""Ticket submission and repository endpoints against a real git server:
refs are resolved by the repository, hostile input is a 400 naming the field."""

from __future__ import annotations

import os

import pytest
from rest_framework.test import APIClient

from releases.models import Ticket

# Repository fetches run on the worker; here it runs them inline (django-q2 sync mode).
pytestmark = [pytest.mark.sshd, pytest.mark.usefixtures("inline_worker")]

HOSTILE = [
    ("ref", {"ref": "main;touch${IFS}/tmp/pwned"}),
    ("ref", {"ref": "--upload-pack=touch /tmp/pwned"}),
    ("ref", {"ref": "HEAD~1"}),
    ("ref", {"ref": "nope"}),
    ("commit", {"commit": "abc;id"}),
    ("commit", {"commit": "HEAD~1"}),
    ("commit", {"commit": "--upload-pack=x"}),
    ("commit", {"commit": "f" * 40}),
]


def api_as(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_submit_resolves_refs_and_refuses_hostile_input(site):
    client = api_as(site.users["developer"])
    base = {"project": site.project.pk, "title": "ship v1", "ref": "master"}
    for field, bad in HOSTILE:
        response = client.post("/api/tickets/", {**base, **bad}, format="json")
        assert response.status_code == 400, (bad, response.content)
        assert list(response.json()) == [field], (bad, response.json())
    assert not os.path.exists("/tmp/pwned")
    assert not Ticket.objects.exists()

    tip = client.post("/api/tickets/", base, format="json")
    assert tip.status_code == 201, tip.content
    assert tip.json()["commit"] == site.commits["v1"] and tip.json()["status"] == Ticket.Status.PENDING
    assert tip.json()["author"] == "developer" and len(tip.json()["hosts"]) == 3

    site.push("v2", "two")
    first_host = site.host_records[0].pk
    pinned = client.post(
        "/api/tickets/", {**base, "commit": site.commits["v1"], "hosts": [first_host]}, format="json"
    )
    assert pinned.status_code == 201, pinned.content
    assert pinned.json()["commit"] == site.commits["v1"]
    assert [h["id"] for h in pinned.json()["hosts"]] == [first_host]
    # Without a commit, the tip is the git server's, not the mirror's stale one.
    fresh = client.post("/api/tickets/", base, format="json")
    assert fresh.status_code == 201 and fresh.json()["commit"] == site.commits["v2"]
    site.push("v3", "three")
    # A commit pushed after the last fetch is found by fetching once more.
    just_pushed = client.post("/api/tickets/", {**base, "commit": site.commits["v3"]}, format="json")
    assert just_pushed.status_code == 201, just_pushed.content


def test_refs_commits_and_check_endpoints(site):
    base = f"/api/projects/{site.project.pk}"
    reporter = api_as(site.users["reporter"])
    site.push("v2", "two")
    refs = reporter.get(f"{base}/refs/?refresh=1")
    assert refs.status_code == 200 and refs.json()["branches"] == ["master"]
    commits = reporter.get(f"{base}/commits/?branch=master").json()
    assert [c["sha"] for c in commits] == [site.commits["v2"], site.commits["v1"]]
    assert set(commits[0]) == {"sha", "short", "author", "date", "message"}
    assert "branch" in reporter.get(f"{base}/commits/").json()
    assert "branch" in reporter.get(f"{base}/commits/?branch=nope").json()
    assert "branch" in reporter.get(f"{base}/commits/?branch=--output=/tmp/pwned").json()
    assert api_as(site.users["guest"]).get(f"{base}/refs/").status_code == 403

    assert api_as(site.users["developer"]).post(f"{base}/check/").status_code == 403
    report = api_as(site.users["maintainer"]).post(f"{base}/check/")
    assert report.status_code == 200, report.content
    body = report.json()
    assert body["ok"] is True and body["pinned_hosts"] == []
    assert body["results"] and all(r["ok"] for r in body["results"])
    assert set(body["results"][0]) == {"name", "host", "ok", "warning", "message", "fix"}
    assert "PRIVATE KEY" not in report.content.decode()


def test_edit_a_rejected_ticket_to_another_commit(site):
    developer = api_as(site.users["developer"])
    created = developer.post(
        "/api/tickets/", {"project": site.project.pk, "title": "ship", "ref": "master"}, format="json"
    ).json()
    url = f"/api/tickets/{created['id']}/"
    assert api_as(site.users["owner"]).post(f"{url}reject/", {"reason": "no"}, format="json").status_code == 200
    v2 = site.push("v2", "two")  # after the last fetch

    refused = api_as(site.users["maintainer"]).post(f"{url}edit/", {"commit": v2}, format="json")
    assert refused.status_code == 403
    for field, bad in [("ref", {"ref": "nope"}), ("ref", {"ref": "--upload-pack=x"}),
                       ("commit", {"commit": "f" * 40}), ("commit", {"commit": "abc;id"})]:
        response = developer.post(f"{url}edit/", bad, format="json")
        assert response.status_code == 400 and list(response.json()) == [field], (bad, response.content)
    ticket = Ticket.objects.get(pk=created["id"])
    assert ticket.status == Ticket.Status.REJECTED and ticket.commit == site.commits["v1"]

    first = site.host_records[0].pk
    edited = developer.post(f"{url}edit/", {"commit": v2, "hosts": [first], "title": "ship v2"}, format="json")
    assert edited.status_code == 200, edited.content
    body = edited.json()
    assert body["status"] == Ticket.Status.PENDING and body["commit"] == v2 and body["title"] == "ship v2"
    assert [h["id"] for h in body["hosts"]] == [first]
    # A new ref without a commit takes the server's tip.
    approved = api_as(site.users["owner"]).post(f"{url}approve/", {"version": body["version"]}, format="json")
    assert approved.status_code == 200
    v3 = site.push("v3", "three")
    tip = developer.post(f"{url}edit/", {"ref": "master"}, format="json")
    assert tip.status_code == 200 and tip.json()["commit"] == v3 and tip.json()["status"] == Ticket.Status.PENDING
