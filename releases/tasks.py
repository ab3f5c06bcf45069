"""The background entry point: run one DeployRun on the worker (django-q2).

This is the only module that touches both the ORM and ``releases.deploy``: it
claims the run, holds the project lock, builds a plan from the models, hands it
to the engine, and records what happened. Every run ends in ``finish_run``.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
from datetime import UTC

from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.utils import timezone

from projects.keys import key_for

from . import workflow
from .deploy import pipeline
from .deploy.hostops import releases_to_remove
from .deploy.masking import MASK, secret_fragments
from .deploy.plan import (
    DeployPlan,
    Hooks,
    HostResult,
    HostState,
    Outcome,
    RefKind,
    RollbackPlan,
    Secret,
    Stage,
    Stream,
    Target,
)
from .deploy.sandbox import SandboxMode, SandboxSpec
from .deploy.ssh import remove_stale_key_files
from .models import DeployRun, LogLine, Release, RunHost, Ticket

logger = logging.getLogger(__name__)
# A key file older than the longest possible run belongs to a dead worker.
STALE_KEY_FILES_AGE = settings.WALLE_DEPLOY_TIMEOUT + 600


def run_deploy(run_id: int) -> str:
    """django-q2 task: execute a queued run. Safe to deliver twice."""
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
    """django-q2 schedule: end runs whose worker died (see workflow.reap_stale_runs),
    and delete temporary key files a killed worker could not clean up."""
    remove_stale_key_files(older_than=STALE_KEY_FILES_AGE)
    return workflow.reap_all_stale_runs()


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
    key = Secret(key_for(ticket.project).private_key())
    log.add_secret(key)
    if ticket.is_rollback:
        plan = build_rollback_plan(run, hosts, key)
        return pipeline.rollback(plan, log, run_hooks)
    plan = build_deploy_plan(run, hosts, key)
    DeployRun.objects.filter(pk=run.pk).update(release_name=plan.release_name)
    log.release_name = plan.release_name
    return pipeline.deploy(plan, log, run_hooks)


def _target(host) -> Target:
    return Target(id=host.pk, address=host.address, port=host.port, host_key=host.host_key)


def _common(run: DeployRun, key: Secret) -> dict:
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
        sandbox=hook_sandbox(),
    )


def hook_sandbox() -> SandboxSpec:
    """Hide Walle's secrets and other projects' workspaces from deploy-host
    hooks; keep Walle's own code read-only."""
    return SandboxSpec(
        mode=SandboxMode(settings.WALLE_HOOK_SANDBOX),
        hide=(str(settings.DATA_DIR), str(settings.WALLE_WORKSPACE_ROOT)),
        read_only=(str(settings.BASE_DIR),),
    )


def release_name_for(run: DeployRun) -> str:
    # UTC: local time can go backwards (DST), and keep-N sorts by name.
    started = (run.started_at or timezone.now()).astimezone(UTC)
    return f"{started:%Y%m%d-%H%M%S}-{run.ticket_id}"


def build_deploy_plan(run: DeployRun, hosts, key: Secret) -> DeployPlan:
    project = run.ticket.project
    return DeployPlan(
        **_common(run, key), repo_url=project.repo_url, repo_host_key=project.repo_host_key,
        commit=run.ticket.commit, workspace=project.effective_workspace, excludes=project.exclude_lines,
        release_name=release_name_for(run), keep_releases=project.keep_releases,
        targets=tuple(_target(h) for h in hosts),
    )


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


def build_rollback_plan(run: DeployRun, hosts, key: Secret) -> RollbackPlan:
    pairs = rollback_releases(run.ticket, hosts)
    return RollbackPlan(
        **_common(run, key), commit=run.ticket.commit,
        releases=tuple((_target(h), name) for h, name in pairs),
    )


# Engine host states after which the new release dir exists / is served.
_ON_DISK = (HostState.PREPARED, HostState.SWITCHED, HostState.DONE)
_LIVE = (HostState.SWITCHED, HostState.DONE)


def record(run: DeployRun, outcome: Outcome) -> None:
    """Store the final per-host results, the commit, and what keep-N removed."""
    now = timezone.now()
    with transaction.atomic():
        for result in outcome.hosts:
            record_host(run, result, outcome.release_name, outcome.commit)
        if outcome.commit:
            DeployRun.objects.filter(pk=run.pk).update(commit=outcome.commit)
            Release.objects.filter(run=run).update(commit=outcome.commit)
        if outcome.ok and not run.ticket.is_rollback:
            _mark_pruned(run.ticket.project, outcome, now)


def record_host(run: DeployRun, result: HostResult, release_name: str, commit: str) -> None:
    """Store one host's result and which release it serves (called live, as
    each host changes state, and once more at the end)."""
    ticket = run.ticket
    RunHost.objects.filter(run=run, host_id=result.target_id).update(
        status=RunHost.Status(result.state.value), release=result.release,
        previous_release=result.previous_release, error=result.error, duration=result.duration,
    )
    if not ticket.is_rollback and release_name:
        _record_release_dir(run, result, release_name, commit)
    if result.state in _LIVE and result.release:
        _mark_live(ticket.project, result.target_id, result.release, timezone.now())


def _record_release_dir(run: DeployRun, result: HostResult, name: str, commit: str) -> None:
    """A deploy's new release dir now exists on the host, or was removed again."""
    ticket = run.ticket
    if result.state in _ON_DISK:
        Release.objects.get_or_create(
            project=ticket.project, host_id=result.target_id, name=name,
            defaults={"commit": commit, "ticket": ticket, "run": run},
        )
    elif result.state == HostState.CLEANED:
        Release.objects.filter(project=ticket.project, host_id=result.target_id, name=name).update(
            removed_at=timezone.now()
        )


def _mark_pruned(project, outcome: Outcome, now) -> None:
    """Record what keep-N removed, by the engine's own selection rule."""
    for result in outcome.hosts:
        names = Release.objects.filter(project=project, host_id=result.target_id, removed_at__isnull=True)
        gone = releases_to_remove(
            names.values_list("name", flat=True), project.keep_releases, {result.release, result.previous_release}
        )
        names.filter(name__in=gone).update(removed_at=now, is_live=False)


def _mark_live(project, host_id: int, name: str, now) -> None:
    Release.objects.filter(project=project, host_id=host_id, is_live=True).exclude(name=name).update(is_live=False)
    Release.objects.filter(project=project, host_id=host_id, name=name).update(is_live=True, switched_at=now)


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


class RunLog:
    """What the engine reports through: masks secrets, stores console lines in
    order, and records each host's state as it changes.

    Engine threads only enqueue; one writer thread stores everything in order
    (batching lines), so host threads never open database connections and the
    console sees a line within a fraction of a second.
    """

    FLUSH_EVERY = 0.2

    def __init__(self, run: DeployRun) -> None:
        self.run = run
        self.seq = LogLine.objects.filter(run=run).count()
        self.release_name = ""  # set once the plan is known
        self._secrets: list[str] = []
        self._queue: queue.Queue = queue.Queue()
        self._done = threading.Event()
        self._writer = threading.Thread(target=self._write_loop, name=f"walle-log-{run.pk}", daemon=True)
        self._writer.start()

    def add_secret(self, secret: Secret) -> None:
        self._secrets = sorted(set(self._secrets) | set(secret_fragments(secret)), key=len, reverse=True)

    def _mask(self, text: str) -> str:
        for fragment in self._secrets:
            text = text.replace(fragment, MASK)
        return text

    def __call__(self, host: str, stage: Stage, stream: Stream, text: str) -> None:
        self._queue.put((host, str(stage), str(stream), self._mask(str(text))))

    def note(self, stage: Stage, stream: Stream, text: str) -> None:
        """Walle's own message about the run, not tied to a host."""
        self("", stage, stream, text)

    def host_result(self, result: HostResult) -> None:
        """The engine's on_host hook."""
        result.error = self._mask(result.error)
        self._queue.put(result)

    def _drain(self) -> None:
        rows: list[LogLine] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, tuple):
                host, stage, stream, text = item
                self.seq += 1
                rows.append(LogLine(run=self.run, seq=self.seq, host=host, stage=stage, stream=stream, text=text))
                continue
            self._store(rows)  # keep lines and host states in the order they happened
            rows = []
            if isinstance(item, HostResult):
                record_host(self.run, item, self.release_name, self.run.ticket.commit)
            else:  # a flush marker
                item.set()
        self._store(rows)

    def _store(self, rows: list[LogLine]) -> None:
        if rows:
            LogLine.objects.bulk_create(rows)
            DeployRun.objects.filter(pk=self.run.pk).update(stage=rows[-1].stage)

    def _write_loop(self) -> None:
        try:
            while not self._done.wait(self.FLUSH_EVERY):
                self._drain()
            self._drain()
        finally:
            connection.close()

    def flush(self, timeout: float = 30) -> None:
        """Wait until everything reported so far is stored."""
        marker = threading.Event()
        self._queue.put(marker)
        marker.wait(timeout)

    def close(self) -> None:
        self._done.set()
        self._writer.join(timeout=30)
