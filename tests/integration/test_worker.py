"""Deploys through the real background worker (``manage.py qcluster``), and how
a run ends when hosts or workers die."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from releases import tasks, workflow
from releases.models import DeployRun, ProjectLock, Release, RunHost, Ticket
from tests.deploy_fixtures import V1_TEXT, V2_TEXT, deploy_now, open_approved_ticket, wait_for

pytestmark = [pytest.mark.sshd, pytest.mark.worker]
S = Ticket.Status


def _final(ticket: Ticket) -> Ticket | None:
    ticket.refresh_from_db()
    return ticket if ticket.status in (S.SUCCEEDED, S.FAILED) else None


def test_the_worker_process_picks_the_ticket_off_the_queue(site, qcluster):
    ticket = open_approved_ticket(site, "v1")
    run = workflow.deploy(site.users["developer"], ticket)  # on_commit: async_task to the broker
    done = wait_for(lambda: _final(ticket), timeout=180)
    run.refresh_from_db()
    assert done.status == S.SUCCEEDED, run.error
    assert run.worker.split(":")[1] != str(os.getpid())  # ran in the worker process, not here
    assert all(V1_TEXT in page for page in site.pages())
    assert not ProjectLock.objects.exists()


def test_two_deploys_of_one_project_never_overlap(site, qcluster):
    site.project.pre_release = "sleep 2"
    site.project.save()
    first = open_approved_ticket(site, "v1")
    site.push("v2", V2_TEXT)
    second = open_approved_ticket(site, "v2")
    workflow.deploy(site.users["developer"], first)
    with pytest.raises(workflow.Conflict):
        workflow.deploy(site.users["developer"], second)
    wait_for(lambda: _final(first), timeout=180)
    workflow.deploy(site.users["developer"], second)
    wait_for(lambda: _final(second), timeout=180)
    runs = list(DeployRun.objects.filter(ticket__project=site.project).order_by("started_at"))
    assert [r.status for r in runs] == [DeployRun.Status.SUCCEEDED] * 2
    assert runs[0].finished_at <= runs[1].started_at
    assert all(V2_TEXT in page for page in site.pages())


def _v2_running_after_v1(site, pre_release: str):
    """Deploy v1, then start v2 (with a slow pre_release) on a worker thread and
    return once v2 is in pre_release: (webroot targets before, ticket, run, thread)."""
    first = deploy_now(site.users["developer"], open_approved_ticket(site, "v1"))
    assert first.status == DeployRun.Status.SUCCEEDED, first.error
    before = [t.readlink("/data/nginx/website") for t in site.targets]
    site.project.pre_release = pre_release
    site.project.save()
    site.push("v2", V2_TEXT)
    ticket = open_approved_ticket(site, "v2")
    run = workflow.deploy(site.users["developer"], ticket)
    worker = threading.Thread(target=tasks.run_deploy, args=(run.pk,))
    worker.start()
    wait_for(lambda: run.log_lines.filter(stage="pre_release").exists(), timeout=120, interval=0.1)
    return before, ticket, run, worker


def test_a_host_killed_mid_run_fails_the_ticket_cleanly(site):
    before, ticket, run, worker = _v2_running_after_v1(site, "sleep 3")
    victim = site.targets[1]
    victim.kill()
    try:
        worker.join(timeout=180)
        ticket.refresh_from_db()
        assert ticket.status == S.FAILED
        assert not ProjectLock.objects.exists()
        survivors = [t for t in site.targets if t is not victim]
        assert [t.readlink("/data/nginx/website") for t in survivors] == [before[0], before[2]]
        assert all(V1_TEXT in t.http_get("/") for t in survivors)
        failed = RunHost.objects.get(run=run, host=site.host_records[1])
        assert failed.status == RunHost.Status.FAILED and failed.error
    finally:
        victim.start()
    assert V1_TEXT in victim.http_get("/")  # its webroot never moved either


@pytest.fixture
def short_lease(settings):
    settings.WALLE_LOCK_LEASE = 4
    settings.WALLE_LOCK_HEARTBEAT = 1


def test_a_killed_worker_leaves_a_failed_ticket_not_a_stuck_one(short_lease, site, qcluster):
    site.project.pre_release = "sleep 8"
    site.project.save()
    ticket = open_approved_ticket(site, "v1")
    run = workflow.deploy(site.users["developer"], ticket)
    wait_for(lambda: run.log_lines.filter(stage="pre_release").exists(), timeout=120, interval=0.1)
    os.killpg(qcluster.pid, signal.SIGKILL)  # the whole worker, mid-deploy
    ticket.refresh_from_db()
    assert ticket.status == S.DEPLOYING
    assert tasks.reap_stale_runs() == 0  # the lease has not expired yet
    time.sleep(5)
    assert tasks.reap_stale_runs() == 1
    ticket.refresh_from_db()
    run.refresh_from_db()
    assert (ticket.status, run.status) == (S.FAILED, DeployRun.Status.FAILED)
    assert "Interrupted" in run.error
    assert not ProjectLock.objects.exists()
    assert not any(os.path.lexists(t.data_path("/data/nginx/website")) for t in site.targets)  # never switched


def test_a_run_that_lost_its_lock_switches_nothing(site):
    before, ticket, run, worker = _v2_running_after_v1(site, "sleep 2")
    workflow.release_lock(site.users["maintainer"], site.project)  # a Maintainer frees a "stuck" project
    worker.join(timeout=180)
    assert [t.readlink("/data/nginx/website") for t in site.targets] == before
    assert all(V1_TEXT in page for page in site.pages())
    ticket.refresh_from_db()
    assert ticket.status == S.FAILED
    assert run.log_lines.filter(text__contains="lost its project lock").exists()


def test_hosts_switched_before_the_worker_died_are_recorded_and_can_be_rolled_back(short_lease, site, qcluster):
    first = open_approved_ticket(site, "v1")
    workflow.deploy(site.users["developer"], first)
    wait_for(lambda: _final(first), timeout=180)
    site.project.post_release = "sleep 8"
    site.project.save()
    site.push("v2", V2_TEXT)
    second = open_approved_ticket(site, "v2")
    run = workflow.deploy(site.users["developer"], second)
    wait_for(lambda: run.log_lines.filter(stage="post_release").count() >= 3, timeout=120, interval=0.1)
    time.sleep(0.5)  # the writer stores host states every 0.2 s
    os.killpg(qcluster.pid, signal.SIGKILL)  # after every webroot switched, before post_release ended
    time.sleep(5)
    assert tasks.reap_stale_runs() == 1
    second.refresh_from_db()
    assert second.status == S.FAILED
    states = set(RunHost.objects.filter(run=run).values_list("status", flat=True))
    assert states == {RunHost.Status.SWITCHED}
    run.refresh_from_db()
    live = set(Release.objects.filter(project=site.project, is_live=True).values_list("name", flat=True))
    assert live == {run.release_name}
    rollback = workflow.request_rollback(site.users["maintainer"], second)
    assert set(rollback.hosts.all()) == set(site.host_records)
    assert deploy_now(site.users["maintainer"], rollback).status == DeployRun.Status.SUCCEEDED
    assert all(V1_TEXT in page for page in site.pages())
