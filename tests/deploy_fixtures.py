"""Fixtures that wire Walle's models to the real test hosts and git server.

``site`` gives a production project whose repository lives on the SSH git
server and whose three hosts are real sshd targets, with host keys pinned by a
real config check. ``qcluster`` runs the real django-q2 worker process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field

import pytest
from django.conf import settings as django_settings
from django.db import connection

from accounts.models import Role
from projects.config_check import run_check
from projects.keys import team_key
from projects.models import Host, Project
from releases import tasks, workflow
from releases.models import DeployRun, Ticket
from tests.infra.hosts import authorize_key

from . import helpers

PAGE = "<!DOCTYPE html><html><body><h3>{}</h3></body></html>\n"
V1_TEXT = "第一次测试"
V2_TEXT = "增加一个很牛逼的功能"


@dataclass
class Site:
    project: Project
    targets: list  # tests.infra TargetHost, same order as host_records
    host_records: list
    git_server: object
    repo: str
    commits: dict = field(default_factory=dict)
    users: dict = field(default_factory=dict)

    def push(self, label: str, text: str, **kw) -> str:
        sha = self.git_server.commit(self.repo, {"index.html": PAGE.format(text)}, label, **kw)
        self.commits[label] = sha
        return sha

    def pages(self) -> list[str]:
        return [t.http_get("/") for t in self.targets]


@pytest.fixture
def deploy_key(transactional_db, world):
    # Deploy keys are per group: the site's project (world.team) logs in with its group's key.
    key = team_key(world.team)
    authorize_key("www", key.public_key)
    authorize_key("git", key.public_key)
    return key


@pytest.fixture
def site(transactional_db, world, hosts, git_server, deploy_key, settings, tmp_path) -> Site:
    settings.WALLE_WORKSPACE_ROOT = tmp_path / "workspaces"
    repo = f"website-{uuid.uuid4().hex[:8]}"
    git_server.create_repo(repo)
    records = [Host.objects.create(address=h.address, port=h.port) for h in hosts]
    project = helpers.make_project(
        world.team, hosts=records, name=repo, slug=repo, repo_url=git_server.url(repo),
        webroot="/data/nginx/website", release_library=f"/data/releases/{repo}",
    )
    result = Site(project, list(hosts), records, git_server, repo, users=world.users)
    result.push("v1", V1_TEXT)
    report = run_check(world.users["maintainer"], project)
    assert report.ok, [r for r in report.results if not r.ok]
    project.refresh_from_db()
    return result


def deploy_now(actor, ticket: Ticket) -> DeployRun:
    """Queue a run through the workflow, then execute it in this process."""
    run = workflow.deploy(actor, ticket)
    tasks.run_deploy(run.pk)
    run.refresh_from_db()
    return run


def open_approved_ticket(site: Site, label: str, author_role: str = "developer") -> Ticket:
    author = site.users[author_role]
    ticket = workflow.submit(author, site.project, title=f"ship {label}", ref="master", commit=site.commits[label])
    if ticket.status == Ticket.Status.PENDING:
        approver = site.users["owner" if author_role != "owner" else "maintainer"]
        workflow.approve(approver, ticket, version=ticket.version)
    return ticket


@pytest.fixture
def inline_worker(monkeypatch):
    """django-q2's sync mode (Q_CLUSTER["sync"], WALLE_SYNC_TASKS): every queued
    task, repository fetches included, runs at once in this process."""
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "SYNC", True)


def _worker_env() -> dict[str, str]:
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        url = f"sqlite:///{db['NAME']}"
    else:
        url = f"postgres://{db['USER'] or ''}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    env = dict(os.environ)
    env.update(
        DATABASE_URL=url,
        WALLE_SECRET_KEY=django_settings.SECRET_KEY,
        WALLE_KEY_ENCRYPTION_KEY=",".join(django_settings.WALLE_KEY_ENCRYPTION_KEYS),
        WALLE_WORKSPACE_ROOT=str(django_settings.WALLE_WORKSPACE_ROOT),
        WALLE_WORKERS="2",
        WALLE_LOCK_LEASE=str(django_settings.WALLE_LOCK_LEASE),
        WALLE_LOCK_HEARTBEAT=str(django_settings.WALLE_LOCK_HEARTBEAT),
    )
    return env


@pytest.fixture
def qcluster(transactional_db, settings):
    """The real worker: ``manage.py qcluster`` in its own process group."""
    log = open(os.path.join(django_settings.DATA_DIR, "qcluster-test.log"), "w")
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "qcluster"], cwd=django_settings.BASE_DIR, env=_worker_env(),
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    time.sleep(1.0)
    assert proc.poll() is None, "qcluster exited at start; see var/qcluster-test.log"
    yield proc
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=8)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    log.close()


def wait_for(predicate, timeout: float = 120, interval: float = 0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


__all__ = ["Site", "deploy_now", "open_approved_ticket", "wait_for", "Role", "V1_TEXT", "V2_TEXT"]
