"""With the real worker process (``manage.py qcluster``) and the real git
server: the web process never decrypts a deploy key, the worker fetches, the
pages show what it fetched, and a new ticket waits for the worker's fetch of
the server's current tip."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet, MultiFernet
from django.urls import reverse
from rest_framework.test import APIClient

from projects import crypto
from releases.models import RepositoryFetch, Ticket
from tests.deploy_fixtures import wait_for

pytestmark = [pytest.mark.sshd, pytest.mark.worker]


@pytest.fixture
def no_decryption_here(monkeypatch) -> list[str]:
    """Every way this (web) process could decrypt a stored key raises instead.
    The worker is another process: the patch does not reach it."""
    attempts: list[str] = []

    def refuse(*args, **kwargs):
        attempts.append("decrypt")
        raise AssertionError("a deploy key was decrypted in the web process")

    monkeypatch.setattr(crypto, "decrypt", refuse)
    monkeypatch.setattr(MultiFernet, "decrypt", refuse)
    monkeypatch.setattr(Fernet, "decrypt", refuse)
    return attempts


def test_pages_and_api_work_while_only_the_worker_decrypts_and_fetches(site, qcluster, client, no_decryption_here):
    client.force_login(site.users["developer"])
    chooser = f"{reverse('ticket_new')}?project={site.project.pk}"
    first = client.get(chooser).content.decode()
    assert "Never fetched — the worker is fetching it now" in first
    status_url = f"{reverse('ticket_new_fetch_status')}?project={site.project.pk}"
    wait_for(lambda: not client.get(status_url).json()["in_progress"], timeout=60, interval=0.5)
    assert RepositoryFetch.objects.get(project=site.project).outcome == RepositoryFetch.Outcome.OK

    page = client.get(f"{chooser}&ref=master").content.decode()
    assert site.commits["v1"][:7] in page and 'id="preview"' in page and "as fetched" in page

    # A new ticket without a commit takes the server's tip: the page waits for the worker to fetch it.
    v2 = site.push("v2", "second")
    response = client.post(reverse("ticket_new"), {
        "project": site.project.pk, "ref": "master", "commit": "", "title": "ship the tip",
        "hosts": [h.pk for h in site.host_records],
    })
    assert response.status_code == 302, response.content.decode()[-2000:]
    assert Ticket.objects.get(title="ship the tip").commit == v2

    api = APIClient()
    api.force_login(site.users["developer"])
    v3 = site.push("v3", "third")
    created = api.post("/api/tickets/", {"project": site.project.pk, "title": "api", "ref": "master",
                                         "commit": v3}, format="json")
    assert created.status_code == 201, created.content
    refs = api.get(f"/api/projects/{site.project.pk}/refs/?refresh=1")
    assert refs.status_code == 200 and refs.json()["branches"] == ["master"]
    assert no_decryption_here == []
