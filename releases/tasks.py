"""The background entry point: run one DeployRun on the worker (django-q2).

This is the only module that touches both the ORM and ``engine``: it
claims the run, holds the project lock, builds a plan from the models, hands it
to the engine, and records what happened. Every run ends in ``finish_run``.
"""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import socket
import threading
from datetime import UTC

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import close_old_connections, connection
from django.db.models import Q
from django.utils import timezone

from engine import pipeline
from engine.plan import (
    RELEASE_NAME_RE,
    DeployPlan,
    Hooks,
    Outcome,
    RefKind,
    RollbackPlan,
    Secret,
    Stage,
    Stream,
    Target,
)
from engine.sandbox import BuildUser, SandboxMode, SandboxSpec
from engine.ssh import remove_stale_key_files
from projects.keys import key_for
from projects.secrets import secret_env
from projects.validators import validate_workspace

from . import workflow
from .models import DeployRun, Release, RunHost, Ticket
from .recorder import record
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
    log = RunLog(run)
    try:
        return _run_locked(run, worker, log)
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


def remove_dead_workers_files() -> list[str]:
    """Key dirs whose process is gone (or that outlived any run): removed now."""
    return remove_stale_key_files(older_than=STALE_KEY_FILES_AGE)


def remove_build_dirs(run: DeployRun) -> None:
    """A dead run's build dir and hook HOME in its project's workspace, if they
    are on this machine (the next deploy of the project removes them anyway)."""
    if not RELEASE_NAME_RE.fullmatch(run.release_name or ""):
        return
    builds = os.path.join(run.ticket.project.effective_workspace, pipeline.BUILDS_DIR)
    for name in (run.release_name, run.release_name + ".home"):
        shutil.rmtree(os.path.join(builds, name), ignore_errors=True)


def _run_locked(run: DeployRun, worker: str, log: RunLog) -> str:
    taken, note = workflow.acquire_lock(run, worker)
    if not taken:
        log.note(Stage.PREPARE, Stream.ERROR, note)
        workflow.finish_run(run, ok=False, error=note)
        return note
    if note:
        log.note(Stage.PREPARE, Stream.INFO, note)
    beat = Heartbeat(run)
    beat.start()
    try:
        outcome = _execute(run, log, pipeline.RunHooks(may_switch=beat.still_ours, on_host=log.host_result))
    except Exception as exc:  # a bug must still end the run, never leave it "deploying"
        logger.exception("run %s crashed", run.pk)
        log.note(Stage.FINISH, Stream.ERROR, f"Internal error: {type(exc).__name__}: {exc}")
        outcome = Outcome(ok=False, error=f"Internal error: {type(exc).__name__}")
    finally:
        beat.stop()
    try:
        log.flush()  # live host updates land before the final record, never after it
        record(run, outcome)  # the engine has already logged its own summary
    finally:
        log.flush()
        workflow.finish_run(run, ok=outcome.ok, error=outcome.error, commit=outcome.commit)
        workflow.release_own_lock(run)
    return "succeeded" if outcome.ok else f"failed: {outcome.error}"


def _execute(run: DeployRun, log: RunLog, run_hooks: pipeline.RunHooks) -> Outcome:
    ticket = run.ticket
    hosts = list(ticket.hosts.order_by("address", "port"))
    RunHost.objects.bulk_create([RunHost(run=run, host=h) for h in hosts])
    problem = workspace_problem(ticket.project)
    if problem:  # saved before workspaces had to lie inside WALLE_WORKSPACE_ROOT
        log.note(Stage.PREPARE, Stream.ERROR, problem)
        return Outcome(ok=False, error=problem)
    key = Secret(key_for(ticket.project).private_key())
    secrets = project_secrets(ticket.project)
    for secret in (key, *(value for _, value in secrets)):
        log.add_secret(secret)
    if ticket.is_rollback:
        plan = build_rollback_plan(run, hosts, key, secrets)
        return pipeline.rollback(plan, log, run_hooks)
    plan = build_deploy_plan(run, hosts, key, secrets)
    DeployRun.objects.filter(pk=run.pk).update(release_name=plan.release_name)
    log.release_name = plan.release_name
    return pipeline.deploy(plan, log, run_hooks)


def _target(host) -> Target:
    return Target(id=host.pk, address=host.address, port=host.port, host_key=host.host_key)


def workspace_problem(project) -> str:
    """Why the project's workspace may not be used (hooks could reach it), or ""."""
    try:
        validate_workspace(project.effective_workspace)
    except ValidationError as exc:
        return f"refused: the project's workspace is not usable: {' '.join(exc.messages)}"
    return ""


def project_secrets(project) -> tuple[tuple[str, Secret], ...]:
    """The project's hook secrets, decrypted here in the worker only."""
    return tuple((name, Secret(value)) for name, value in sorted(secret_env(project).items()))


def _common(run: DeployRun, key: Secret, secrets: tuple[tuple[str, Secret], ...]) -> dict:
    ticket = run.ticket
    project = ticket.project
    return dict(
        project=project.slug, environment=project.environment.slug, ticket_id=ticket.pk,
        ticket_title=ticket.title, ref_kind=RefKind(ticket.ref_kind), ref=ticket.ref,
        run_user=project.run_user, webroot=project.webroot,
        release_library=project.effective_release_library,
        hooks=Hooks(*(project.hook_lines(n) for n in ("pre_deploy", "post_deploy", "pre_release", "post_release"))),
        post_release_delay=project.post_release_delay, max_parallel=project.max_parallel, key=key,
        command_timeout=settings.WALLE_COMMAND_TIMEOUT,
        deployed_by=run.triggered_by.get_username() if run.triggered_by else "",
        sandbox=hook_sandbox(), secrets=secrets,
    )


def hook_sandbox() -> SandboxSpec:
    """Hide Walle's data dir and every workspace (mirrors included) from
    deploy-host hooks; as root, run them as the unprivileged build user."""
    return SandboxSpec(
        mode=SandboxMode(settings.WALLE_HOOK_SANDBOX),
        hide=(str(settings.DATA_DIR), str(settings.WALLE_WORKSPACE_ROOT)),
        build_user=build_user(),
        network=settings.WALLE_HOOK_NETWORK,
    )


def build_user() -> BuildUser:
    """The account named by WALLE_BUILD_USER (the system check reports a missing one)."""
    try:
        entry = pwd.getpwnam(settings.WALLE_BUILD_USER)
    except KeyError:
        # Never silently "nobody": uid 0 is refused by the sandbox with a clear message.
        return BuildUser(uid=0, gid=0)
    return BuildUser(uid=entry.pw_uid, gid=entry.pw_gid)


def release_name_for(run: DeployRun) -> str:
    # UTC: local time can go backwards (DST), and keep-N sorts by name.
    started = (run.started_at or timezone.now()).astimezone(UTC)
    return f"{started:%Y%m%d-%H%M%S}-{run.ticket_id}"


def build_deploy_plan(run: DeployRun, hosts, key: Secret, secrets: tuple = ()) -> DeployPlan:
    project = run.ticket.project
    return DeployPlan(
        **_common(run, key, secrets), repo_url=project.repo_url, repo_host_key=project.repo_host_key,
        commit=run.ticket.commit, workspace=project.effective_workspace, excludes=project.exclude_lines,
        release_name=release_name_for(run), keep_releases=project.keep_releases,
        targets=tuple(_target(h) for h in hosts), known_releases=known_releases(project),
    )


def known_releases(project) -> frozenset[str]:
    """Releases of the project that went live or whose deploy succeeded; any
    other Walle-named dir on a host is a leftover of an interrupted run."""
    proper = Q(switched_at__isnull=False) | Q(run__status=DeployRun.Status.SUCCEEDED)
    names = Release.objects.filter(proper, project=project, removed_at__isnull=True).values_list("name", flat=True)
    return frozenset(names)


def rollback_releases(ticket: Ticket, hosts) -> list[tuple[object, str]]:
    """Per host, the release to restore: the named one, or what was live
    before the ticket being rolled back (empty when there was nothing)."""
    if ticket.rollback_release:
        return [(h, ticket.rollback_release) for h in hosts]
    # Per host, the earliest run that switched it knows what was live before
    # this ticket; a later re-run's "previous" is this ticket's own release.
    previous = dict(
        RunHost.objects.filter(run__ticket=ticket.rollback_of, status__in=RunHost.LIVE_STATUSES)
        .order_by("-run__number").values_list("host_id", "previous_release")
    )
    return [(h, previous.get(h.pk, "")) for h in hosts]


def build_rollback_plan(run: DeployRun, hosts, key: Secret, secrets: tuple = ()) -> RollbackPlan:
    pairs = rollback_releases(run.ticket, hosts)
    return RollbackPlan(
        **_common(run, key, secrets), commit=run.ticket.commit,
        releases=tuple((_target(h), name) for h, name in pairs),
    )


class Heartbeat(threading.Thread):
    """Keeps the project lock's lease fresh while the engine works, and knows
    when the lock is no longer ours (released by a Maintainer, taken over)."""

    def __init__(self, run: DeployRun) -> None:
        super().__init__(name=f"walle-heartbeat-{run.pk}", daemon=True)
        self.run_obj = run
        self._stop_event = threading.Event()
        self.lost = threading.Event()

    def run(self) -> None:
        try:
            while not self._stop_event.wait(settings.WALLE_LOCK_HEARTBEAT):
                self._beat()
        finally:
            connection.close()

    def _beat(self) -> None:
        try:
            if not workflow.heartbeat(self.run_obj):
                self.lost.set()
        except Exception:  # a busy database must not end the heartbeat; try again next beat
            logger.warning("heartbeat of run %s failed", self.run_obj.pk, exc_info=True)
            close_old_connections()

    def still_ours(self) -> bool:
        """The engine's switch gate: renew the lease now; False if it is gone."""
        try:
            if not workflow.heartbeat(self.run_obj):
                self.lost.set()
        finally:
            connection.close()  # it may be asked from an engine thread; never leak its connection
        return not self.lost.is_set()

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=30)
