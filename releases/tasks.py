"""The worker's entry points (django-q2 tasks): run one deploy or rollback,
and sweep up after dead workers.

The path of a run: ``workflow.start_run`` claims it, ``ProjectLease`` holds
the project, ``plans`` builds the engine's plan, ``engine.pipeline`` does the
work and reports through ``RunLog`` (console lines) to the ``Recorder`` (host
results, releases, commit), and ``workflow.finish_run`` ends it.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import threading

from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone
from django.utils.translation import gettext

from engine import pipeline
from engine.pipeline import RunCallbacks
from engine.plan import RELEASE_NAME_RE, Outcome, Secret, Stage, Stream
from engine.ssh import remove_stale_key_files
from projects.keys import key_for

from . import plans, workflow
from .lease import LeaseRefused, ProjectLease
from .models import DeployRun
from .promotion import PromoteWait
from .recorder import Recorder
from .runlog import RunLog

logger = logging.getLogger(__name__)
# A key file older than the longest possible run belongs to a dead worker.
STALE_KEY_FILES_AGE = settings.WALLE_DEPLOY_TIMEOUT + 600


def run_deploy(run_id: int) -> str:
    """django-q2 task: execute a queued run. Safe to deliver twice."""
    # Every worker machine sweeps its own leftovers (the scheduled reaper runs
    # on one machine only): key files of processes that died here.
    remove_dead_workers_files()
    worker = f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"
    run = workflow.start_run(run_id, worker)
    if run is None:
        return f"run {run_id} was already claimed or cancelled; nothing to do"
    recorder = Recorder(run)
    log = RunLog(run, on_host=recorder.host)
    try:
        return _run_holding_the_project(run, worker, log, recorder)
    finally:
        log.close()
        close_old_connections()


def reap_stale_runs() -> int:
    """django-q2 schedule: delete what killed workers left on this machine (key
    files at once), end runs whose worker died (see workflow.reap_stale_runs)
    and remove their build dirs; return how many runs were ended."""
    remove_dead_workers_files()
    reaped = workflow.reap_all_stale_runs()
    for run in reaped:
        remove_build_dirs(run)
    return len(reaped)


def run_scheduled_deploys() -> int:
    """django-q2 schedule (every minute): queue the scheduled deploys whose time
    has come; return how many were queued (refusals are ticket events)."""
    return len(workflow.run_due_schedules(timezone.now()))


def remove_dead_workers_files() -> list[str]:
    """Key dirs whose process is gone (or that outlived any run): removed now.
    Housekeeping: a failure is logged and never stops the deploy that called it
    (the run would stay queued until the reaper calls it lost)."""
    try:
        return remove_stale_key_files(older_than=STALE_KEY_FILES_AGE)
    except OSError:
        logger.exception("sweeping dead workers' key files failed; the next task tries again")
        return []


def remove_build_dirs(run: DeployRun) -> None:
    """A dead run's build dir and hook HOME in its project's workspace, if they
    are on this machine (the next deploy of the project removes them anyway)."""
    if not RELEASE_NAME_RE.fullmatch(run.release_name or ""):
        return
    builds = os.path.join(run.ticket.project.effective_workspace, pipeline.BUILDS_DIR)
    for name in (run.release_name, run.release_name + ".home"):
        shutil.rmtree(os.path.join(builds, name), ignore_errors=True)


def _run_holding_the_project(run: DeployRun, worker: str, log: RunLog, recorder: Recorder) -> str:
    try:
        with ProjectLease(run, worker) as lease:
            if lease.note:
                log.note(Stage.PREPARE, Stream.INFO, lease.note)
            callbacks = RunCallbacks(may_switch=lease.still_ours, on_host=log.host_result, on_resolved=recorder.resolved,
                                     await_promote=PromoteWait(run, lease, log))
            try:
                outcome = _execute(run, log, recorder, callbacks)
            except Exception as exc:  # a bug must still end the run, never leave it "deploying"
                logger.exception("run %s crashed", run.pk)
                error = gettext("Internal error: %(error)s") % {"error": type(exc).__name__}
                log.note(Stage.FINISH, Stream.ERROR, f"{error}: {exc}")
                outcome = Outcome(ok=False, error=error)
            try:
                log.flush()  # every host report is stored before the run ends
                if not log.healthy:  # the writer died: store the final word on each host here
                    for result in outcome.hosts:
                        recorder.host(result)
            finally:
                workflow.finish_run(run, ok=outcome.ok, error=outcome.error, failed_batch=outcome.failed_batch)
    except LeaseRefused as refused:
        log.note(Stage.PREPARE, Stream.ERROR, refused.note)
        log.flush()
        workflow.finish_run(run, ok=False, error=refused.note)
        return refused.note
    return "succeeded" if outcome.ok else f"failed: {outcome.error}"


def _execute(run: DeployRun, log: RunLog, recorder: Recorder, callbacks: RunCallbacks) -> Outcome:
    ticket = run.ticket
    hosts = list(ticket.hosts.order_by("address", "port"))
    recorder.started(hosts)
    problem = plans.workspace_problem(ticket.project)
    if problem:  # saved before workspaces had to lie inside WALLE_WORKSPACE_ROOT
        log.note(Stage.PREPARE, Stream.ERROR, problem)
        return Outcome(ok=False, error=problem)
    key = Secret(key_for(ticket.project).private_key())
    secrets = plans.project_secrets(ticket.project)
    for secret in (key, *(value for _, value in secrets)):
        log.add_secret(secret)
    if ticket.is_rollback:
        return pipeline.rollback(plans.build_rollback_plan(run, hosts, key, secrets), log, callbacks)
    plan = plans.build_deploy_plan(run, hosts, key, secrets)
    recorder.planned(plan.release_name)
    return pipeline.deploy(plan, log, callbacks)
