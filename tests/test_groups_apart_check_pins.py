"""The config check pins a host's key only when it also logged in to that host
(and the git server's only when the repository was read)."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from engine.checks import CheckReport, CheckResult
from projects import config_check as checks
from projects.models import Host

from . import helpers

KEY_A = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
KEY_B = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
REPO_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICccccccccccccccccccccccccccccccccccccccccc"


@pytest.fixture
def two_hosts(world):
    hosts = [helpers.make_host("10.8.0.1"), helpers.make_host("10.8.0.2", port=2222)]
    world.project.hosts.set(hosts)
    return hosts


def _fake_report(good: Host, bad: Host, repo_ok: bool) -> CheckReport:
    """What the engine reports today: both keys fetched, one login failed."""
    return CheckReport(
        results=[
            CheckResult("repository host key", "", True, "git server key was not pinned; fetched SHA256:repo to pin",
                        warning=True),
            CheckResult("repository", "", repo_ok, "repository"),
            CheckResult("host key", good.endpoint, True, "host key was not pinned; pinned SHA256:aaa", warning=True),
            CheckResult("login", good.endpoint, True, "logged in as www"),
            CheckResult("host key", bad.endpoint, True, "host key was not pinned; pinned SHA256:bbb", warning=True),
            CheckResult("reachable", bad.endpoint, True, "host answers SSH"),
            CheckResult("login", bad.endpoint, False, "authentication failed"),
        ],
        pinned={good.pk: KEY_A, bad.pk: KEY_B},
        repo_host_key=REPO_KEY,
    )


@pytest.mark.parametrize("repo_ok", [True, False])
def test_only_hosts_it_logged_in_to_are_pinned(world, two_hosts, monkeypatch, repo_ok):
    good, bad = two_hosts
    monkeypatch.setattr(checks, "check_project", lambda **kw: _fake_report(good, bad, repo_ok))
    report = checks.run_check(world.users["maintainer"], world.project)
    good.refresh_from_db()
    bad.refresh_from_db()
    assert good.host_key == KEY_A and good.host_key_pinned_by == world.users["maintainer"]
    assert bad.host_key == "" and bad.host_key_pinned_at is None
    assert set(report.pinned) == {good.pk}
    message = next(r.message for r in report.results if r.name == "host key" and r.host == bad.endpoint)
    assert "not pinned" in message and "SHA256:bbb" in message
    world.project.refresh_from_db()
    assert (world.project.repo_host_key == REPO_KEY) is repo_ok


def test_the_api_reports_only_what_was_pinned(world, two_hosts, monkeypatch):
    good, bad = two_hosts
    monkeypatch.setattr(checks, "check_project", lambda **kw: _fake_report(good, bad, False))
    client = APIClient()
    client.force_login(world.users["maintainer"])
    data = client.post(f"/api/projects/{world.project.pk}/check/").json()
    assert data["pinned_hosts"] == [good.pk]
    assert data["pinned_repo_host_key"] is False
