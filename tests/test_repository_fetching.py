"""Repository fetches belong to the worker: the web process only queues them
(rate-limited), shows what was fetched and when, waits a bounded time when a
ticket needs the server's tip, and tells a bad repository setting (409) from
an outage (503). No worker runs here; see test_fetch_in_worker.py for one."""

from __future__ import annotations

import subprocess
import threading
import time
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from django_q.models import OrmQ
from rest_framework.test import APIClient

from engine import git
from releases import fetching, repository
from releases.models import RepositoryFetch, Ticket

PINNED = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
BAD_URL = "ext::sh -c touch% /tmp/pwned"


@pytest.fixture
def project(world, settings, tmp_path):
    settings.WALLE_WORKSPACE_ROOT = tmp_path / "workspaces"
    world.project.repo_host_key = PINNED
    world.project.save()
    return world.project


def api_as(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def queued_fetches() -> int:
    return OrmQ.objects.count()


def test_a_refresh_only_queues_and_not_again_while_one_is_pending(project):
    assert repository.request_refresh(project) is True
    assert repository.request_refresh(project) is False  # queued, not run: no second one
    assert queued_fetches() == 1
    record = RepositoryFetch.objects.get(project=project)
    # Finished, but asked for moments ago: still not again.
    RepositoryFetch.objects.filter(pk=record.pk).update(finished_at=timezone.now())
    assert repository.request_refresh(project) is False
    RepositoryFetch.objects.filter(pk=record.pk).update(requested_at=timezone.now() - timedelta(seconds=31))
    assert repository.request_refresh(project) is True
    assert queued_fetches() == 2


def test_a_fetch_lost_long_ago_no_longer_holds_back_the_next(project):
    assert repository.request_refresh(project)
    RepositoryFetch.objects.filter(project=project).update(
        requested_at=timezone.now() - fetching.LOST_AFTER - timedelta(seconds=1))
    assert repository.request_refresh(project) is True


def test_the_page_shows_never_fetched_and_follows_the_worker(client, world, project):
    client.force_login(world.users["developer"])
    page = client.get(reverse("ticket_new"), {"project": project.pk}).content.decode()
    assert "Never fetched — the worker is fetching it now" in page
    assert 'data-in-progress="1"' in page and "location.reload()" in page
    assert queued_fetches() == 1  # the first look asked for the first fetch
    client.get(reverse("ticket_new"), {"project": project.pk})
    assert queued_fetches() == 1
    status = client.get(reverse("ticket_new_fetch_status"), {"project": project.pk}).json()
    assert status == {"in_progress": True, "fetched_at": None}


def test_the_page_says_how_old_the_lists_are_and_why_the_last_fetch_failed(client, world, project):
    mirror = git.mirror_path(project.effective_workspace)
    subprocess.run(["git", "init", "--quiet", "--bare", mirror], check=True)  # lists fetched earlier
    now = timezone.now()
    RepositoryFetch.objects.create(
        project=project, requested_at=now - timedelta(minutes=1), finished_at=now - timedelta(minutes=1),
        fetched_at=now - timedelta(minutes=10), outcome=RepositoryFetch.Outcome.UNREACHABLE,
        error="Cannot fetch the repository: git fetch failed (exit status 128).",
    )
    client.force_login(world.users["developer"])
    page = client.get(reverse("ticket_new"), {"project": project.pk}).content.decode()
    assert "as fetched 10\xa0minutes ago" in page
    assert 'id="fetch-error"' in page and "git fetch failed (exit status 128)" in page
    assert "location.reload()" not in page and queued_fetches() == 0  # nothing asked, nothing to wait for


def test_the_refresh_button_posts_and_reports_the_rate_limit(client, world, project):
    client.force_login(world.users["developer"])
    url = reverse("ticket_new_refresh")
    assert client.get(url, {"project": project.pk}).status_code == 405  # a GET changes nothing
    first = client.post(url, {"project": project.pk, "ref": "main"})
    assert first.status_code == 302 and "ref=main" in first["Location"]
    again = client.post(url, {"project": project.pk}, follow=True).content.decode()
    assert "moments ago" in again and queued_fetches() == 1
    assert client.post(url, {"project": world.other_project.pk}).status_code == 302  # invisible: nothing
    assert queued_fetches() == 1


def test_a_ticket_waits_a_bounded_time_and_says_when_no_worker_fetched(world, project, monkeypatch):
    monkeypatch.setattr(repository, "FETCH_WAIT", 0.5)
    data = {"project": project.pk, "title": "ship", "ref": "master"}
    response = api_as(world.users["developer"]).post("/api/tickets/", data, format="json")
    assert response.status_code == 503
    assert "worker did not fetch" in response.json()["detail"] and "qcluster" in response.json()["detail"]
    assert not Ticket.objects.exists()


def test_the_new_ticket_form_says_when_no_worker_fetched(client, world, project, monkeypatch):
    monkeypatch.setattr(repository, "FETCH_WAIT", 0.5)
    client.force_login(world.users["developer"])
    response = client.post(reverse("ticket_new"), {
        "project": project.pk, "ref": "master", "title": "ship", "hosts": [h.pk for h in project.hosts.all()],
    })
    assert response.status_code == 200 and "worker did not fetch" in response.content.decode()
    assert not Ticket.objects.exists()


# --- A bad stored repository setting is a configuration error, not an outage -------

@pytest.fixture
def misconfigured(project):
    # Saved before validation got stricter: the queryset skips the validators.
    type(project).objects.filter(pk=project.pk).update(repo_url=BAD_URL)
    project.refresh_from_db()
    return project


def test_the_api_reports_a_bad_repo_url_as_a_409_naming_the_setting(world, misconfigured):
    data = {"project": misconfigured.pk, "title": "ship", "ref": "master"}
    response = api_as(world.users["developer"]).post("/api/tickets/", data, format="json")
    assert response.status_code == 409, response.content
    detail = response.json()["detail"]
    assert "repository URL" in detail and "configuration error" in detail and misconfigured.name in detail
    assert queued_fetches() == 0 and not Ticket.objects.exists()


def test_the_page_reports_a_bad_repo_url_as_a_configuration_error(client, world, misconfigured):
    client.force_login(world.users["developer"])
    page = client.get(reverse("ticket_new"), {"project": misconfigured.pk}).content.decode()
    assert 'id="repo-error"' in page and "repository URL" in page and "configuration error" in page
    refresh = client.post(reverse("ticket_new_refresh"), {"project": misconfigured.pk}, follow=True)
    assert "configuration error" in refresh.content.decode()
    assert queued_fetches() == 0


def test_an_unpinned_git_server_key_is_a_configuration_error(world, project):
    type(project).objects.filter(pk=project.pk).update(repo_host_key="")
    data = {"project": project.pk, "title": "ship", "ref": "master"}
    response = api_as(world.users["developer"]).post("/api/tickets/", data, format="json")
    assert response.status_code == 409 and "config check" in response.json()["detail"]


def test_the_worker_records_a_bad_setting_as_configuration_not_outage(misconfigured):
    result = fetching.fetch_repository(misconfigured.pk)
    assert result["outcome"] == "config" and "repository URL" in result["error"]
    record = RepositoryFetch.objects.get(project=misconfigured)
    assert (record.outcome, record.fetched_at) == ("config", None) and record.finished_at


def test_an_unreachable_git_server_is_a_503(world, project, inline_worker):
    type(project).objects.filter(pk=project.pk).update(repo_url="ssh://git@127.0.0.1:1/srv/git/nothing.git")
    data = {"project": project.pk, "title": "ship", "ref": "master"}
    response = api_as(world.users["developer"]).post("/api/tickets/", data, format="json")
    assert response.status_code == 503, response.content
    assert "Cannot fetch the repository" in response.json()["detail"]
    assert RepositoryFetch.objects.get(project=project).outcome == "unreachable"
    assert "PRIVATE KEY" not in response.content.decode()


@pytest.mark.django_db(transaction=True)
def test_many_tickets_at_once_cost_the_worker_one_fetch(project):
    """Callers that need the server's tip while a fetch is already queued wait
    for that fetch instead of queueing one each (no fetch flood)."""
    assert fetching.fetch_and_wait(project, timeout=0) is None  # queued, no worker here
    assert fetching.fetch_and_wait(project, timeout=0) is None
    assert queued_fetches() == 1
    results: list = []
    waiter = threading.Thread(target=lambda: results.append(fetching.fetch_and_wait(project, timeout=10)))
    waiter.start()
    time.sleep(0.5)
    RepositoryFetch.objects.filter(project=project).update(finished_at=timezone.now(), outcome="ok")
    waiter.join(timeout=15)
    assert queued_fetches() == 1 and results and results[0].ok


def test_a_fetch_that_crashes_is_recorded_as_failed_not_waited_for(project, monkeypatch):
    def boom(project):
        raise RuntimeError("database went away")

    monkeypatch.setattr(fetching, "_fetch", boom)
    outcome = fetching.fetch_repository(project.pk)
    assert outcome["outcome"] == RepositoryFetch.Outcome.ERROR and "database went away" not in outcome["error"]
    record = RepositoryFetch.objects.get(project=project)
    assert record.finished_at is not None and record.outcome == RepositoryFetch.Outcome.ERROR
