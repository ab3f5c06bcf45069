"""The config check (检测) from the admin, against the real hosts."""

from __future__ import annotations

import pytest
from django.urls import reverse

from projects.models import Host

pytestmark = pytest.mark.sshd


def _check(client, user, project):
    client.force_login(user)
    return client.post(reverse("admin:projects_project_check", args=[project.pk]))


def test_the_check_pins_new_hosts_and_records_who(client, site):
    fresh = site.host_records[0]
    Host.objects.filter(pk=fresh.pk).update(host_key="", host_key_fingerprint="", host_key_pinned_by=None)
    response = _check(client, site.users["maintainer"], site.project)
    assert response.status_code == 200
    assert "All checks passed" in response.content.decode()
    fresh.refresh_from_db()
    assert fresh.host_key == site.targets[0].host_key
    assert fresh.host_key_pinned_by == site.users["maintainer"]


def test_a_real_directory_webroot_and_a_changed_key_are_reported_with_fixes(client, site):
    site.targets[0].run(["mkdir", "-p", "/data/nginx/website"])
    site.targets[1].rotate_host_key()
    body = _check(client, site.users["maintainer"], site.project).content.decode()
    assert "Some checks failed" in body
    assert body.count('class="check-fail"') >= 2
    assert "127.0.0.11" in body and "127.0.0.12" in body
    assert site.targets[0].data_path("/data/nginx/website").is_dir()  # never deleted
    record = Host.objects.get(pk=site.host_records[1].pk)
    assert record.host_key != site.targets[1].host_key  # a changed key is not silently re-pinned


def test_developers_cannot_run_the_check(client, site):
    assert _check(client, site.users["developer"], site.project).status_code == 403


def test_the_project_page_shows_the_authorized_keys_line_but_never_the_private_key(client, site, deploy_key):
    client.force_login(site.users["maintainer"])
    body = client.get(reverse("admin:projects_project_change", args=[site.project.pk])).content.decode()
    assert deploy_key.public_key.split()[1] in body
    assert "PRIVATE KEY" not in body
    assert deploy_key.private_key().splitlines()[1] not in body
