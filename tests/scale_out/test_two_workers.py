"""Two workers (`manage.py qcluster`) on one PostgreSQL and one Redis, each with
its own data dir and workspaces, as on two machines: twenty projects deploy at
once, every run succeeds, no project ever runs two at a time; then one worker
is killed mid-deploy and its ticket ends failed once the lease is out, while
the other worker finishes its deploy and takes the next one.

Runs in the scale-out pass (.ci/scale-out.sh); the ORM broker on SQLite is
one machine's configuration and is covered by tests/integration/test_worker.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from projects.config_check import run_check
from projects.models import Host, Project
from releases import tasks, workflow
from releases.models import DeployRun, ProjectLock, Ticket
from tests import helpers
from tests.deploy_fixtures import PAGE, _worker_env, wait_for
from walleproj import health

SCALE_OUT = os.environ.get("DATABASE_URL", "").startswith("postgres") and bool(os.environ.get("WALLE_REDIS_URL"))
pytestmark = [
    pytest.mark.sshd,
    pytest.mark.worker,
    pytest.mark.skipif(not SCALE_OUT, reason="scale-out pass only: needs DATABASE_URL=postgres://… and WALLE_REDIS_URL"),
]
S = Ticket.Status
PROJECTS = 20
LEASE, HEARTBEAT = 5, 1
# The longest one run may need on this 2-core machine with 19 others beside it.
ALL_DONE = 150


@dataclass
class Worker:
    name: str
    proc: subprocess.Popen
    data_dir: Path

    @property
    def workspaces(self) -> Path:
        return self.data_dir / "workspaces"

    def ran(self, run: DeployRun) -> bool:
        """Whether one of this cluster's processes claimed the run (worker = host:pid:thread)."""
        pid = int(run.worker.split(":")[1])
        try:
            return os.getpgid(pid) == self.proc.pid
        except ProcessLookupError:
            return False

    def stat(self):
        return next(s for s in health.live_clusters() if s.pid == self.proc.pid)

    def pause_intake(self) -> int:
        """Stop this cluster's pusher (the one process taking tasks off Redis).
        Its pending BLPOP times out in 1 s, after which no task can reach it."""
        pusher = self.stat().pusher
        os.kill(pusher, signal.SIGSTOP)
        time.sleep(1.5)
        return pusher

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


def start_worker(name: str, root: Path) -> Worker:
    data_dir = root / name
    env = _worker_env()  # same database, SECRET_KEY and key-encryption key as this test
    env.update(WALLE_DATA_DIR=str(data_dir), WALLE_WORKSPACE_ROOT=str(data_dir / "workspaces"))
    log = open(root / f"{name}.log", "w")  # noqa: SIM115 - lives as long as the process
    proc = subprocess.Popen([sys.executable, "manage.py", "qcluster"], cwd=django_settings.BASE_DIR, env=env, umask=0o077,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return Worker(name, proc, data_dir)


@pytest.fixture
def workers(transactional_db, settings, tmp_path) -> Iterator[tuple[Worker, Worker]]:
    settings.WALLE_LOCK_LEASE = LEASE
    settings.WALLE_LOCK_HEARTBEAT = HEARTBEAT
    pair = (start_worker("worker-a", tmp_path), start_worker("worker-b", tmp_path))
    try:
        wait_for(lambda: {w.proc.pid for w in pair} <= {s.pid for s in health.live_clusters()}, timeout=30)
        yield pair
    finally:
        for worker in pair:
            if worker.proc.poll() is None:
                os.killpg(worker.proc.pid, signal.SIGTERM)
                try:
                    worker.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    worker.kill()


@dataclass
class Fleet:
    projects: list[Project]
    repos: list[str]
    targets: list
    git_server: object
    users: dict

    def push(self, i: int, label: str) -> str:
        return self.git_server.commit(self.repos[i], {"index.html": PAGE.format(f"{self.repos[i]} {label}")}, label)

    def approved_ticket(self, i: int, commit: str) -> Ticket:
        ticket = workflow.submit(self.users["developer"], self.projects[i], title=f"ship {commit[:7]}",
                                 ref="master", commit=commit)
        return workflow.approve(self.users["owner"], ticket, version=ticket.version)

    def serves(self, i: int, label: str) -> bool:
        page = f"{self.repos[i]} {label}"
        webroot = self.projects[i].webroot
        return all(page in t.data_path(f"{webroot}/index.html").read_text() for t in self.targets)


@pytest.fixture
def fleet(transactional_db, world, hosts, git_server, deploy_key) -> Fleet:
    """Twenty projects of one group, each with its own repository, webroot and
    release library on the same three targets."""
    records = [Host.objects.create(address=h.address, port=h.port) for h in hosts]
    tag = uuid.uuid4().hex[:6]
    repos, projects = [], []
    for i in range(PROJECTS):
        repo = f"fleet-{tag}-{i:02d}"
        git_server.create_repo(repo)
        repos.append(repo)
        projects.append(helpers.make_project(
            world.team, hosts=records, name=repo, slug=repo, repo_url=git_server.url(repo),
            webroot=f"/data/nginx/{repo}", release_library=f"/data/releases/{repo}",
        ))
    result = Fleet(projects, repos, list(hosts), git_server, world.users)
    result.push(0, "v1")
    # One config check pins the three hosts and the git server for all.
    report = run_check(world.users["maintainer"], projects[0])
    assert report.ok, [r for r in report.results if not r.ok]
    projects[0].refresh_from_db()
    Project.objects.filter(pk__in=[p.pk for p in projects[1:]]).update(repo_host_key=projects[0].repo_host_key)
    for project in projects:
        project.refresh_from_db()
    return result


def ended(*tickets: Ticket) -> bool:
    return all(t.status in (S.SUCCEEDED, S.FAILED) for t in Ticket.objects.filter(pk__in=[t.pk for t in tickets]))


def running(ticket: Ticket, stage: str) -> DeployRun | None:
    run = DeployRun.objects.filter(ticket=ticket, status=DeployRun.Status.RUNNING).order_by("-number").first()
    return run if run and run.log_lines.filter(stage=stage).exists() else None


def assert_no_project_ran_twice_at_once() -> None:
    for project in Project.objects.all():
        runs = list(DeployRun.objects.filter(ticket__project=project, started_at__isnull=False).order_by("started_at"))
        for earlier, later in zip(runs, runs[1:], strict=False):
            assert earlier.finished_at is not None and earlier.finished_at <= later.started_at, (project, earlier, later)


def test_two_workers_share_twenty_deploys_and_survive_one_dying(fleet, workers):
    a, b = workers
    commits = [fleet.push(i, "v1") if i else fleet.git_server.rev_parse(fleet.repos[0], "master")
               for i in range(PROJECTS)]
    tickets = [fleet.approved_ticket(i, commits[i]) for i in range(PROJECTS)]
    runs = [workflow.deploy(fleet.users["developer"], t) for t in tickets]  # twenty at once

    wait_for(lambda: ended(*tickets), timeout=ALL_DONE, interval=0.5)
    for run in runs:
        run.refresh_from_db()
    assert [r.status for r in runs] == [DeployRun.Status.SUCCEEDED] * PROJECTS, [r.error for r in runs if r.error]
    assert all(fleet.serves(i, "v1") for i in range(PROJECTS))
    by_worker = {w.name: [r for r in runs if w.ran(r)] for w in workers}
    assert len(by_worker["worker-a"]) + len(by_worker["worker-b"]) == PROJECTS
    assert by_worker["worker-a"] and by_worker["worker-b"], "one worker did all the work"
    # Each worker checked out in its own workspaces only: nothing is shared.
    for worker in workers:
        for run in by_worker[worker.name]:
            assert (worker.workspaces / run.ticket.project.slug).is_dir()
    assert not ProjectLock.objects.exists()
    assert_no_project_ran_twice_at_once()

    # A slow deploy on worker a: worker b takes nothing while its intake is paused.
    for i in (0, 1):
        fleet.projects[i].pre_release = "sleep 20" if i == 0 else "sleep 4"
        fleet.projects[i].save()
    doomed = fleet.approved_ticket(0, fleet.push(0, "v2"))
    paused = b.pause_intake()
    try:
        workflow.deploy(fleet.users["developer"], doomed)
        doomed_run = wait_for(lambda: running(doomed, "pre_release"), timeout=60, interval=0.2)
    finally:
        os.kill(paused, signal.SIGCONT)
    assert a.ran(doomed_run)
    # And one on worker b, in flight when worker a dies.
    a.pause_intake()
    survivor = fleet.approved_ticket(1, fleet.push(1, "v2"))
    workflow.deploy(fleet.users["developer"], survivor)
    survivor_run = wait_for(lambda: running(survivor, "pre_release"), timeout=60, interval=0.2)
    assert b.ran(survivor_run)

    a.kill()  # the whole cluster, mid-deploy
    doomed.refresh_from_db()
    assert doomed.status == S.DEPLOYING  # nobody knows yet: the lease still runs
    # The reaper (every minute in production) ends it once the lease is out.
    wait_for(lambda: tasks.reap_stale_runs() or ended(doomed), timeout=4 * LEASE, interval=0.5)
    doomed.refresh_from_db()
    doomed_run.refresh_from_db()
    assert (doomed.status, doomed_run.status) == (S.FAILED, DeployRun.Status.FAILED)
    assert "Interrupted" in doomed_run.error
    assert not ProjectLock.objects.filter(project=fleet.projects[0]).exists()
    assert fleet.serves(0, "v1")  # worker a died before the switch: v1 is still served

    # Worker b was never disturbed, and takes the retry of the failed ticket.
    wait_for(lambda: ended(survivor), timeout=60, interval=0.5)
    survivor.refresh_from_db()
    assert survivor.status == S.SUCCEEDED
    assert fleet.serves(1, "v2")
    fleet.projects[0].pre_release = ""
    fleet.projects[0].save()
    retry = workflow.deploy(fleet.users["developer"], doomed)
    wait_for(lambda: ended(doomed), timeout=60, interval=0.5)
    retry.refresh_from_db()
    assert retry.status == DeployRun.Status.SUCCEEDED, retry.error
    assert b.ran(retry)
    assert fleet.serves(0, "v2")
    assert_no_project_ran_twice_at_once()
