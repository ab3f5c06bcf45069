"""Per-group keys against the real hosts and git server: a group's project is
checked and deployed with its group's key, and another group's project (or
the platform key) is refused by the same machines and repository."""

from __future__ import annotations

import pytest

from projects.config_check import run_check
from projects.keys import default_key, key_for, team_key
from projects.models import Host
from releases.models import DeployRun
from tests import helpers
from tests.deploy_fixtures import V1_TEXT, deploy_now, open_approved_ticket

pytestmark = pytest.mark.sshd


def _failed(report) -> set[tuple[str, str]]:
    return {(r.host, r.name) for r in report.results if not r.ok}


def test_a_groups_project_is_checked_and_deployed_with_its_groups_key(site):
    # Only the web group's key is in the targets' and git server's
    # authorized_keys (tests.deploy_fixtures.deploy_key); the site fixture's
    # config check passed, so it logged in with that key.
    assert key_for(site.project) == team_key(site.project.team) != default_key()
    run = deploy_now(site.users["developer"], open_approved_ticket(site, "v1"))
    assert run.status == DeployRun.Status.SUCCEEDED, run.error
    assert all(V1_TEXT in page for page in site.pages())


def test_the_platform_key_is_not_what_the_groups_hosts_trust(site):
    site.project.deploy_key = default_key()  # as a platform admin could choose
    site.project.save()
    report = run_check(site.users["admin"], site.project)
    assert ("", "repository") in _failed(report)
    assert {(t.address, "login") for t in site.targets} <= _failed(report)


def test_another_groups_project_cannot_use_this_groups_repository_or_hosts(site, world):
    # Payments points a project at web's repository and machines (the
    # reviewer's repo_url proof); web's git server and hosts trust only web's key.
    Host.objects.filter(pk__in=[h.pk for h in site.host_records]).update(host_key="", host_key_fingerprint="")
    intruder = helpers.make_project(
        world.other_team, hosts=site.host_records, name="intruder", slug="intruder", repo_url=site.project.repo_url,
        webroot="/data/nginx/intruder",
    )
    assert key_for(intruder) == team_key(world.other_team)
    report = run_check(world.users["outsider"], intruder)
    assert ("", "repository") in _failed(report)
    assert {(t.address, "login") for t in site.targets} <= _failed(report)
    # The keys were fetched but login failed, so nothing was pinned (item 10).
    assert not report.pinned
    assert not Host.objects.filter(pk__in=[h.pk for h in site.host_records]).exclude(host_key="").exists()
    intruder.refresh_from_db()
    assert intruder.repo_host_key == ""
    # The web project's own check then logs in and pins them.
    assert run_check(site.users["maintainer"], site.project).ok
    assert not Host.objects.filter(pk__in=[h.pk for h in site.host_records], host_key="").exists()
