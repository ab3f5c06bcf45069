"""Deploy and rollback: all hosts prepared before any host switches.

``deploy`` builds once on the deploy host (mirror, export, hooks), copies the
build to every target in parallel, and only when every target is ready does it
switch webroots (atomically, ``ln -sfn`` + ``mv -fT``). A failure before the
switch leaves every webroot untouched and removes the new release directories.
A failure during the switch is reported per host, never as success.

Operational failures never raise: the result is an :class:`Outcome`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import posixpath
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from . import git, health, hooks, hostops, local, rollout, rsync, sandbox, stamps, validate
from .git import GitError
from .hooks import HookError
from .hostops import Current, HostOpError
from .masking import MaskingLog
from .plan import (
    Common,
    DeployPlan,
    HostResult,
    HostState,
    LogFn,
    Outcome,
    RefKind,
    RollbackPlan,
    Stage,
    Stream,
    Target,
)
from .rollout import Rollout, Strategy
from .sandbox import SandboxMode
from .ssh import Connection, SSHError

# Asked right before the first webroot switch; False means "do not switch".
SwitchGate = Callable[[], bool]
_GATE_CLOSED = "the run lost its project lock before the switch; no webroot is changed"
_LOCK_LOST = "the run lost its project lock; the later batches are not switched"
# Asked before each later batch when the rollout waits for promotes: "" to go
# on, else why not (no promote in time, a person cancelled: ``Cancelled``),
# which stops the rollout and switches back the hosts this run switched.
PromoteGate = Callable[[int, int], str]


class Cancelled(str):
    """A promote gate's answer when a person stopped the rollout ("cancelled by
    alice"): the run then ends as stopped, not failed, once every host it
    switched is back. Any other answer (no promote in time) is a failure."""


logger = logging.getLogger(__name__)

# Failures of the deploy-host steps that are "operational" (bad ref, hook exit 1,
# network down). Anything else is a bug and is logged with a traceback.
_LOCAL_ERRORS = (GitError, HookError, ValueError, OSError, subprocess.SubprocessError)
_HOST_ERRORS = (SSHError, HostOpError, HookError, OSError, ValueError)
BUILDS_DIR = "builds"
# Below this much free space after a failed copy, the disk is what stopped it.
FULL_DISK_KIB = 1024


class _Stopped(Exception):
    """Another host failed, so this one stops before its next step."""


@dataclass(eq=False)
class _Host:
    target: Target
    result: HostResult
    release: str = ""  # the release this run points the webroot at
    conn: Connection | None = None
    current: Current = field(default_factory=Current)
    created: bool = False  # this run created the new release dir on the host
    connect_error: Exception | None = None  # connecting failed while the build ran
    stage: Stage = Stage.PREPARE

    @property
    def name(self) -> str:
        return self.target.name


def _always() -> bool:
    return True


def _ignore(_value: object) -> None:
    return None


def _go_on(_number: int, _total: int) -> str:
    return ""


@dataclass(frozen=True)
class RunCallbacks:
    """How the caller takes part in a run (not to be confused with the
    project's hooks, which are the user's commands).

    ``may_switch`` is asked once, when every host is ready and before any webroot
    changes; False abandons the run (the caller lost its project lock).
    ``on_resolved`` gets the commit the run deploys as soon as it is resolved.
    ``on_host`` gets a copy of a host's result each time its state changes, and
    each host's final result when the run ends. ``await_promote`` is asked
    before each later batch of a rollout that waits for promotes (see
    PromoteGate); it also asks ``may_switch`` itself while it waits.
    """

    may_switch: SwitchGate = _always
    await_promote: PromoteGate = _go_on
    on_host: Callable[[HostResult], None] = _ignore
    on_resolved: Callable[[str], None] = _ignore


NO_CALLBACKS = RunCallbacks()


def not_switched(reason: str) -> str:
    """The one wording for a host whose webroot this run left alone."""
    return f"not switched because {reason}"


ANOTHER_HOST_FAILED = not_switched("another host failed")
NOTHING_SWITCHED = "nothing was switched"  # the run's own summary when no host switched


class HostPool:
    """Runs one step on many hosts, at most ``size`` at a time; once a step
    asked to stop the others, later steps raise _Stopped at their next check."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.stopped = threading.Event()

    def map(self, step: Callable[[_Host], Any], hosts: Sequence[_Host]) -> list[Any]:
        if not hosts:
            return []
        with ThreadPoolExecutor(max_workers=min(self.size, len(hosts)), thread_name_prefix="walle-host") as pool:
            return list(pool.map(step, hosts))

    def stop_all(self) -> None:
        self.stopped.set()

    def check(self) -> None:
        """Raise _Stopped once another host has failed (no point going on)."""
        if self.stopped.is_set():
            raise _Stopped


class _Run:
    """What deploys and rollbacks share: hosts, connections, logging, the switch."""

    def __init__(
        self, plan: Common, log: MaskingLog, hosts: Sequence[tuple[Target, str]], callbacks: RunCallbacks
    ) -> None:
        self.plan = plan
        self.log = log
        self.callbacks = callbacks
        self.commit = ""
        self.hosts = [_Host(target, HostResult(target.id, target.name), release) for target, release in hosts]
        self.pool = HostPool(plan.max_parallel)
        self.failed_batch = ""  # "2/3": the rollout batch that failed
        self.rollout_error = ""  # why the rollout stopped, if it did
        self.cancelled = ""  # who stopped it instead of promoting ("cancelled by alice")

    # -- logging ---------------------------------------------------------------

    def info(self, host: _Host | None, stage: Stage, text: str) -> None:
        """Walle's own narration; host None means the deploy host."""
        self.log(host.name if host else "", stage, Stream.INFO, text)

    def error(self, host: _Host | None, stage: Stage, text: str) -> None:
        """Walle's own failure message."""
        self.log(host.name if host else "", stage, Stream.ERROR, text)

    def lines(self, host: _Host) -> hooks.OnLine:
        """on_line for the host's current stage (looked up per line)."""
        return lambda stream, text: self.log(host.name, host.stage, stream, text)

    # -- running steps on hosts ------------------------------------------------

    def guarded(self, step: Callable[[_Host], None], host: _Host, *, stop_others: bool = False) -> bool:
        """Run one host step; turn any failure into that host's error. True on success."""
        started = time.monotonic()
        try:
            step(host)
            return True
        except _Stopped:
            host.result.error = ANOTHER_HOST_FAILED
            self.info(host, host.stage, host.result.error)
        except Exception as exc:  # noqa: BLE001 - a host failure must not escape
            if not isinstance(exc, _HOST_ERRORS):
                logger.exception("unexpected error on %s", host.name)
            self.fail(host, str(exc) or type(exc).__name__)
            if stop_others:
                self.pool.stop_all()
        finally:
            host.result.duration += time.monotonic() - started
        return False

    def fail(self, host: _Host, message: str) -> None:
        """Record a host failure at its current stage and log it."""
        host.result.error = self.log.mask(f"{host.stage.value}: {message}")
        # A switched host keeps SWITCHED: its webroot does point at the new release.
        self.set_state(host, host.result.state if host.result.state == HostState.SWITCHED else HostState.FAILED)
        self.error(host, host.stage, host.result.error)

    def set_state(self, host: _Host, state: HostState) -> None:
        """Move a host to ``state`` and tell the caller at once, so what each
        host serves is known even if the worker dies before the run ends."""
        host.result.state = state
        self.report(host)

    def report(self, host: _Host) -> None:
        """Hand the caller a copy of the host's result."""
        _call(self.callbacks.on_host, dataclasses.replace(host.result, removed=list(host.result.removed)))

    def resolved(self, commit: str) -> None:
        self.commit = commit
        _call(self.callbacks.on_resolved, commit)

    def each(self, step: Callable[[_Host], None], hosts: Sequence[_Host], *, stop_others: bool = False) -> list[bool]:
        """Run ``step`` on ``hosts`` through the pool; True per host that succeeded."""
        return self.pool.map(lambda h: self.guarded(step, h, stop_others=stop_others), hosts)

    def check_stop(self) -> None:
        self.pool.check()

    # -- shared host steps -----------------------------------------------------

    def connect(self, host: _Host) -> None:
        """Open the host's one connection and read where its webroot points."""
        host.stage = Stage.PREPARE
        plan = self.plan
        self.info(host, host.stage, f"connecting as {plan.run_user}@{host.name}")
        conn = Connection(host.target, plan.run_user, plan.key, connect_timeout=plan.connect_timeout)
        conn.open()
        host.conn = conn
        host.current = hostops.read_current(conn, plan.webroot, plan.release_library, self.lines(host))
        host.result.previous_release = host.result.release = host.current.release
        where = host.current.path or "nothing (no webroot link yet)"
        self.info(host, host.stage, f"{plan.webroot} points at {where}")

    def release_path(self, host: _Host) -> str:
        """Absolute path of the release this run points the host at."""
        return posixpath.join(self.plan.release_library, host.release)

    def hook_env(self, release: str, *, with_secrets: bool = False) -> dict[str, str]:
        """WALLE_* variables for hooks about ``release`` (and the project's
        secrets, for hooks that take them through their environment)."""
        path = posixpath.join(self.plan.release_library, release)
        env = hooks.hook_env(self.plan, commit=self.commit, release=release, release_path=path)
        if with_secrets:
            env.update(hooks.secret_env(self.plan))
        return env

    def pre_release(self, host: _Host) -> None:
        """Run pre_release inside the release dir; the host is then PREPARED."""
        host.stage = Stage.PRE_RELEASE
        assert host.conn is not None
        hooks.run_remote(
            host.conn,
            self.plan.hooks.pre_release,
            cwd=self.release_path(host),
            env=self.hook_env(host.release),
            secrets=hooks.secret_env(self.plan),
            timeout=self.plan.command_timeout,
            on_line=self.lines(host),
        )
        self.set_state(host, HostState.PREPARED)

    def switch_and_post_release(self, host: _Host) -> None:
        """Point the webroot at the host's release, then run post_release in it."""
        assert host.conn is not None
        host.stage = Stage.SWITCH
        try:
            hostops.switch(host.conn, self.release_path(host), self.plan.webroot, self.plan.ticket_id, self.lines(host))
        except SSHError as exc:
            host.result.release = ""  # unknown: the rename may or may not have run
            raise HostOpError(
                f"{exc}; the switch may or may not have happened, check where {self.plan.webroot} points"
            ) from None
        host.result.release = host.release
        self.set_state(host, HostState.SWITCHED)
        self.info(host, host.stage, f"{self.plan.webroot} -> {self.release_path(host)}")
        host.stage = Stage.POST_RELEASE
        hooks.run_remote(
            host.conn,
            self.plan.hooks.post_release,
            cwd=self.plan.webroot,
            env=self.hook_env(host.release),
            secrets=hooks.secret_env(self.plan),
            timeout=self.plan.command_timeout,
            on_line=self.lines(host),
        )
        self.set_state(host, HostState.DONE)

    # -- the rollout: batches, the health gate, switching back ----------------

    gated = True  # deploys wait for promotes and check health; rollbacks do not

    def rollout(self) -> Rollout:
        return self.plan.effective_rollout

    def switch_all(self) -> None:
        """Switch the prepared hosts batch by batch (engine.rollout); the next
        batch starts only when the last one switched and passed the gate."""
        prepared = [h for h in self.hosts if h.result.state == HostState.PREPARED]
        planned = rollout.batches(prepared, self.rollout())
        for number in range(1, len(planned) + 1):
            problem = self.run_batch(number, planned)
            if problem is not None:
                self.failed_batch = f"{number}/{len(planned)}"
                if problem:  # a failed switch or post_release speaks for itself in the summary
                    self.rollout_error = self.log.mask(f"batch {self.failed_batch}: {problem}")
                for host in (h for later in planned[number:] for h in later):
                    host.result.error = not_switched(f"the rollout stopped at batch {self.failed_batch}")
                    self.info(host, Stage.SWITCH, host.result.error)
                return

    def run_batch(self, number: int, planned: list[list[_Host]]) -> str | None:
        """Wait for the batch's turn, switch it, check it: None when it passed,
        "" when a host failed to switch, else why the rollout stopped (after
        switching back whatever that requires)."""
        batch, total = planned[number - 1], len(planned)
        if number > 1:
            refused = self.await_turn(number, total, batch)
            if refused:
                for host in batch:
                    host.result.error = not_switched(refused)
                return refused
        names = ", ".join(h.name for h in batch)
        if total > 1:
            self.info(None, Stage.SWITCH, f"batch {number}/{total}: switching {names}")
        results = self.each(self.switch_and_post_release, batch)
        if not all(results):
            return ""
        gate = self.check_health(batch)
        if gate:
            self.switch_back(gate)
            return gate
        if total > 1:
            self.info(None, Stage.SWITCH, f"batch {number}/{total} done: {names}")
        return None

    def await_turn(self, number: int, total: int, batch: list[_Host]) -> str:
        """The pause, the promote and the lease before a later batch: "" to go on."""
        delay = self.plan.post_release_delay
        if delay > 0:
            self.info(None, Stage.SWITCH, f"waiting {delay} s before batch {number}/{total}")
            time.sleep(delay)
        if self.gated and self.rollout().promote:
            names = ", ".join(h.name for h in batch)
            self.info(None, Stage.SWITCH, f"waiting for a promote before batch {number}/{total} ({names})")
            refused = _call_for(self.callbacks.await_promote, number, total)
            if isinstance(refused, Cancelled):
                self.cancelled = refused  # a person's choice, not a failure: narrated, not an error
                self.info(None, Stage.SWITCH, refused)
            elif refused:
                self.error(None, Stage.SWITCH, refused)
            if refused:
                self.switch_back(refused)
                return refused
            self.info(None, Stage.SWITCH, f"promoted: batch {number}/{total} goes on")
        if not self.callbacks.may_switch():
            self.error(None, Stage.SWITCH, _LOCK_LOST)
            return _LOCK_LOST  # another run may own the project now: switch nothing back either
        return ""

    def check_health(self, batch: list[_Host]) -> str:
        """The gate on every host of the batch: "" when all pass, else why not."""
        if not (self.gated and self.plan.health.enabled):
            return ""
        verdicts = self.pool.map(self.gate_host, batch)
        failed = [f"{h.name}: {why}" for h, why in zip(batch, verdicts, strict=True) if why]
        return "health check failed on " + "; ".join(failed) if failed else ""

    def gate_host(self, host: _Host) -> str:
        """Attempts until one passes; "" when it did, else the last failure."""
        spec = self.plan.health
        host.stage = Stage.HEALTH_CHECK
        why = ""
        for attempt in range(1, spec.retries + 2):
            if attempt > 1:
                time.sleep(spec.interval)
            why = self.gate_attempt(host)
            if not why:
                self.info(host, host.stage, "health check passed")
                return ""
            self.info(host, host.stage, f"attempt {attempt}/{spec.retries + 1} failed")
        host.result.error = self.log.mask(f"{Stage.HEALTH_CHECK.value}: {why}")
        self.error(host, host.stage, host.result.error)
        self.report(host)
        return why

    def gate_attempt(self, host: _Host) -> str:
        spec = self.plan.health
        if spec.path:
            passed, seen = health.probe(host.target.address, spec)
            self.log(host.name, Stage.HEALTH_CHECK, Stream.INFO if passed else Stream.STDERR, seen)
            if not passed:
                return seen
        if spec.command:
            assert host.conn is not None
            try:
                hooks.run_remote(
                    host.conn, (spec.command,), cwd=self.plan.webroot, env=self.hook_env(host.release),
                    secrets=hooks.secret_env(self.plan), timeout=self.plan.command_timeout, on_line=self.lines(host),
                )
            except _HOST_ERRORS as exc:
                return f"the check command failed: {exc}"
        return ""

    def switch_back(self, why: str) -> None:
        """Point every host this run switched back at what it served before."""
        switched = [h for h in self.hosts if h.result.state in (HostState.SWITCHED, HostState.DONE)]
        if not switched:
            return
        self.info(None, Stage.SWITCH, f"switching back {', '.join(h.name for h in switched)} because {why}")
        self.pool.map(self.revert, switched)

    def revert(self, host: _Host) -> bool:
        """Switch one host back; a host that cannot be reached keeps its state and says so."""
        assert host.conn is not None
        host.stage = Stage.SWITCH
        before = host.current
        try:
            if before.path:
                hostops.switch(host.conn, before.path, self.plan.webroot, self.plan.ticket_id, self.lines(host))
            else:
                hostops.unlink_webroot(host.conn, self.plan.webroot, self.lines(host))
        except (SSHError, HostOpError, OSError) as exc:
            note = f"switching back failed: {exc}; it still serves {host.release}"
            host.result.error = self.log.mask(f"{host.result.error}; {note}" if host.result.error else note)
            self.error(host, host.stage, note)
            self.report(host)
            return False
        host.result.release = before.release
        self.set_state(host, HostState.REVERTED)
        self.info(host, host.stage, f"switched back: {self.plan.webroot} -> {before.path or 'no link, as before'}")
        return True

    # -- result ----------------------------------------------------------------

    def outcome(self, error: str = "", release_name: str = "") -> Outcome:
        """The run's result; ok only if every host is DONE and nothing went wrong."""
        error = error or self.rollout_error
        ok = not error and all(h.result.state == HostState.DONE for h in self.hosts)
        if not ok and not error:
            error = self.summary()
        for host in self.hosts:
            note = f" ({host.result.error})" if host.result.error else ""
            where = host.result.release or "-"
            self.info(host, Stage.FINISH, f"{host.result.state.value}, release {where}{note}")
            self.report(host)  # the final word on each host: error, duration, what was removed
        stopped = self.stopped_by_cancel()
        verdict = "succeeded" if ok else stopped or f"failed: {error}"
        self.log("", Stage.FINISH, Stream.INFO if ok or stopped else Stream.ERROR, verdict)
        return Outcome(
            ok=ok,
            commit=self.commit,
            release_name=release_name,
            error=self.log.mask(error),
            hosts=[h.result for h in self.hosts],
            failed_batch=self.failed_batch,
        )

    def stopped_by_cancel(self) -> str:
        """The last word of a rollout a person cancelled, if every host it
        switched is back ("" otherwise: a host still serving the release is a
        failure, and the ticket ends failed)."""
        if not self.cancelled or any(h.result.state in (HostState.SWITCHED, HostState.DONE) for h in self.hosts):
            return ""
        return f"stopped before batch {self.failed_batch}: {self.cancelled}"

    def summary(self) -> str:
        """Which hosts failed and which run which release, in one line."""
        # SWITCHED at the end means post_release failed after the switch.
        bad = (HostState.FAILED, HostState.SWITCHED)
        failed = [f"{h.name}: {h.result.error}" for h in self.hosts if h.result.state in bad]
        switched = [h.name for h in self.hosts if h.result.state in (HostState.SWITCHED, HostState.DONE)]
        text = "; ".join(failed) or "not every host finished"
        if switched:
            text += f". Switched: {', '.join(switched)}"
            if len(switched) < len(self.hosts):
                text += "; the other hosts still run their previous release"
        return text

    def close(self) -> None:
        """Close every host connection."""
        for host in self.hosts:
            if host.conn is not None:
                host.conn.close()


class _Deploy(_Run):
    def __init__(self, plan: DeployPlan, log: MaskingLog, callbacks: RunCallbacks) -> None:
        super().__init__(plan, log, [(t, plan.release_name) for t in plan.targets], callbacks)
        self.deploy_plan = plan
        self.build_dir = ""  # the build hooks' copy of the export; "" when there are no such hooks
        self.source_dir = ""  # what is copied to the targets: the build dir, or the export itself
        self.held = contextlib.ExitStack()  # the export cache's lock, while the copy reads from it
        self.hook_home = ""
        self.stage = Stage.PREPARE

    def execute(self) -> Outcome:
        """The README's steps, in order; a phase that ends the run returns its Outcome."""
        phases = (
            self.build_once,  # 1. check out exactly the commit once and build it on the deploy host
            self.prepare_every_host,  # 2-3. copy to every target, pre_release in the new release
            self.switch_when_all_ready,  # 4. only when every host is ready: switch webroots, post_release
            self.keep_newest_releases,  # 5. keep the last N releases on each host
        )
        for phase in phases:
            ended = phase()
            if ended is not None:
                return ended
        return self.outcome(release_name=self.deploy_plan.release_name)

    def build_once(self) -> Outcome | None:
        # Logging in to the hosts (and reading where their webroots point)
        # changes nothing on them, so it overlaps the build instead of waiting for it.
        connecting = threading.Thread(target=self.pool.map, args=(self.connect_early, self.hosts), daemon=True)
        connecting.start()
        try:
            self.build()
        except _LOCAL_ERRORS as exc:
            message = self.log.mask(f"{self.stage.value} failed: {exc}")
            self.error(None, self.stage, message)
            return self.outcome(f"{message}; no host was touched", self.deploy_plan.release_name)
        finally:
            connecting.join()
        return None

    def connect_early(self, host: _Host) -> bool:
        """Connect while the build runs; a failure waits for the host's turn."""
        try:
            self.connect(host)
        except Exception as exc:  # noqa: BLE001 - re-raised in prepare(), where host failures are handled
            host.connect_error = exc
        return True

    def prepare_every_host(self) -> Outcome | None:
        self.each(self.prepare, self.hosts, stop_others=True)
        # DONE: a retry's host that an earlier run finished.
        if not all(h.result.state in (HostState.PREPARED, HostState.DONE) for h in self.hosts):
            return self.abandon()
        return None

    def switch_when_all_ready(self) -> Outcome | None:
        if not self.callbacks.may_switch():
            return self.abandon(_GATE_CLOSED)
        self.switch_all()
        return None

    def keep_newest_releases(self) -> Outcome | None:
        if all(h.result.state == HostState.DONE for h in self.hosts):
            # Cleanup problems are logged, never fatal; hosts are pruned in parallel.
            self.pool.map(self.prune, self.hosts)
        return None

    def build(self) -> None:
        """Mirror, resolve, export (verified), pre_deploy, post_deploy on the deploy host.

        Hooks run confined to the build dir and a scratch HOME; the mirror and
        every other part of the workspace are out of their reach, and nothing
        they write is read by Walle's own git, ssh or rsync as configuration.
        """
        plan = self.deploy_plan
        self.stage = Stage.CHECKOUT
        on_line = self.log.lines("", Stage.CHECKOUT)
        builds = os.path.join(plan.workspace, BUILDS_DIR)
        self.remove_stale_builds(builds)
        self.info(None, self.stage, f"updating the mirror of {plan.repo_url}")
        git.mirror(plan.repo_url, plan.repo_host_key, plan.key, plan.workspace, on_line, timeout=plan.command_timeout)
        # Resolved before any hook runs, so a bad ref fails early and the hooks
        # see WALLE_COMMIT.
        self.resolved(git.resolve(plan.workspace, plan.ref_kind, plan.ref, plan.commit))
        self.info(None, self.stage, f"{RefKind(plan.ref_kind).value} {plan.ref} is commit {self.commit}")
        os.makedirs(builds, mode=0o700, exist_ok=True)
        if plan.hooks.pre_deploy or plan.hooks.post_deploy:
            self.build_with_hooks(os.path.join(builds, plan.release_name))
        else:
            self.export_for_copy()

    def export_for_copy(self) -> None:
        """No hook changes the export: copy straight from the workspace's
        verified export cache, held locked until the copies are done."""
        plan = self.deploy_plan
        self.held.enter_context(git.export_cache_lock(plan.workspace))
        tree, written, self.source_dir = git.export_in_place(plan.workspace, self.commit, timeout=plan.command_timeout)
        self.info(None, self.stage, f"exported {self.commit} (tree {tree}, verified; {written} entries written)")

    def build_with_hooks(self, build_dir: str) -> None:
        """A copy of the export for pre_deploy/post_deploy to change, then
        content-derived times for whatever they wrote."""
        plan = self.deploy_plan
        self.build_dir = self.source_dir = build_dir
        self.hook_home = build_dir + ".home"
        tree, written = git.export_incremental(plan.workspace, self.commit, build_dir, timeout=plan.command_timeout)
        self.info(None, self.stage, f"exported {self.commit} (tree {tree}, verified; {written} entries written) to {build_dir}")
        os.mkdir(self.hook_home, 0o700)
        sandbox.prepare_for(plan.sandbox, [build_dir, self.hook_home])
        exported = stamps.snapshot(build_dir)  # after the chown, which changes ctimes
        self.run_local_hooks(Stage.PRE_DEPLOY, plan.hooks.pre_deploy)
        self.run_local_hooks(Stage.POST_DEPLOY, plan.hooks.post_deploy)
        # rsync trusts size + mtime; hooks may write new content with an old time.
        count = stamps.stamp_changed(build_dir, exported)
        self.info(None, self.stage, f"{count} files written by the hooks got a time from their content")

    def remove_stale_builds(self, builds: str) -> None:
        """Build dirs of earlier runs are leftovers of a crashed worker: the
        project lock means no other run of this project is building now."""
        if not os.path.isdir(builds):
            return
        for entry in os.scandir(builds):
            self.info(None, self.stage, f"removing {entry.name}, left over by an interrupted run")
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                os.unlink(entry.path)

    def run_local_hooks(self, stage: Stage, lines: Sequence[str]) -> None:
        """pre_deploy/post_deploy on the deploy host, sandboxed (see sandbox)."""
        if not lines:
            return
        self.stage = stage
        if self.plan.sandbox.mode == SandboxMode.AUTO and sandbox.bwrap_path() is None:
            self.log("", stage, Stream.INFO, "warning: bubblewrap is not installed; hooks run without a sandbox")
        hooks.run_local(
            lines,
            box=sandbox.Confinement(cwd=self.build_dir, home=self.hook_home),
            env=self.hook_env(self.deploy_plan.release_name, with_secrets=True),
            timeout=self.plan.command_timeout,
            on_line=self.log.lines("", stage),
            sandbox=self.plan.sandbox,
        )

    def prepare(self, host: _Host) -> None:
        """Connect, create the release dir, rsync, pre_release: everything but the switch."""
        plan = self.deploy_plan
        self.check_stop()
        if host.connect_error is not None:
            raise host.connect_error
        if host.conn is None:
            self.connect(host)
        self.check_stop()
        assert host.conn is not None
        if plan.reuse_prepared and self.reuse(host):
            return
        path = hostops.make_release_dir(host.conn, plan.release_library, host.release, self.lines(host))
        host.created = True
        self.check_stop()
        host.stage = Stage.TRANSFER
        link_dest = host.current.path if host.current.release else ""
        self.info(host, host.stage, f"copying the build to {path}")
        status = rsync.transfer(
            source_dir=self.source_dir,
            target=host.target,
            user=plan.run_user,
            key=plan.key,
            release_path=path,
            excludes=plan.excludes,
            link_dest=link_dest,
            compress=plan.compress,
            timeout=plan.command_timeout,
            on_line=self.lines(host),
            connect_timeout=plan.connect_timeout,
            cancel=self.pool.stopped,
        )
        if status == local.CANCELLED_STATUS:
            raise _Stopped
        if status != 0:
            raise HostOpError(self.copy_failure(host, status))
        self.check_stop()
        self.pre_release(host)
        hostops.mark_prepared(host.conn, plan.release_library, host.release, self.commit, self.lines(host))

    def reuse(self, host: _Host) -> bool:
        """A retry: True when an earlier run's work on the host stands (it
        already serves the release with post_release done, or holds a complete
        copy); otherwise remove what is left of the copy so it starts afresh."""
        plan = self.deploy_plan
        assert host.conn is not None
        serves = host.current.release == host.release
        if serves and host.target.id in plan.done_targets:
            self.info(host, host.stage, f"already serves {host.release} (finished by an earlier run); left alone")
            self.set_state(host, HostState.DONE)
            return True
        marked = hostops.prepared_commit(host.conn, plan.release_library, host.release, self.lines(host))
        if marked == self.commit:
            self.info(host, host.stage, f"reusing {self.release_path(host)}: an earlier run prepared it completely")
            self.set_state(host, HostState.PREPARED)
            return True
        if serves:
            raise HostOpError(f"{plan.webroot} points at {host.release}, whose copy is not marked complete; "
                              "roll the ticket back instead")
        self.info(host, host.stage, f"no complete earlier copy of {host.release} here; copying it afresh")
        hostops.remove_release(host.conn, plan.release_library, host.release, self.lines(host), plan.command_timeout)
        return False

    def copy_failure(self, host: _Host, status: int) -> str:
        """Why the copy failed, in plain words where the host can tell: a full
        disk is the usual cause and rsync's own words may not reach us."""
        assert host.conn is not None
        try:
            free = hostops.free_kib(host.conn, self.deploy_plan.release_library, self.lines(host))
        except (SSHError, OSError):
            free = None  # the host is gone too: nothing more to learn from it
        if free is not None and free < FULL_DISK_KIB:
            return (f"no space left on {host.name} ({free} KiB free in {self.deploy_plan.release_library}); "
                    f"free disk space there or keep fewer releases (rsync exit status {status})")
        return f"copying to {host.name} failed (rsync exit status {status})"

    def abandon(self, reason: str = "") -> Outcome:
        """Some host is not ready (or the caller withdrew permission to switch):
        switch nothing, remove the new release dirs."""
        self.info(None, Stage.CLEANUP, reason or "not every host is ready; no webroot is changed")
        error = f"{NOTHING_SWITCHED}: " + (reason or "; ".join(
            f"{h.name}: {h.result.error}" for h in self.hosts if h.result.state == HostState.FAILED
        ))
        for host in self.hosts:
            if host.result.state != HostState.DONE:  # a retry's host finished earlier: untouched
                self.remove_new_release(host)
        return self.outcome(error, self.deploy_plan.release_name)

    def remove_new_release(self, host: _Host) -> None:
        """Remove the release dir this run created on the host, if it can be reached."""
        failed = host.result.state == HostState.FAILED
        if not failed:
            host.result.error = host.result.error or ANOTHER_HOST_FAILED
        if not host.created:
            return
        host.stage = Stage.CLEANUP
        if self.deploy_plan.keep_prepared and host.result.state == HostState.PREPARED:
            self.info(host, host.stage, f"kept {self.release_path(host)}, prepared completely, for a retry")
            return
        path = self.release_path(host)
        removed = False
        if host.conn is not None and host.conn.is_open:
            try:
                removed = hostops.remove_release(
                    host.conn, self.plan.release_library, host.release, self.lines(host), self.plan.command_timeout
                )
            except (SSHError, OSError) as exc:
                self.error(host, host.stage, f"removing {path} failed: {exc}")
        if removed:
            self.info(host, host.stage, f"removed {path}")
            if not failed:
                self.set_state(host, HostState.CLEANED)
        else:
            note = f"could not remove {path}; remove it by hand (keep-N cleanup will also remove it later)"
            self.error(host, host.stage, note)
            host.result.error += f" ({note})"

    def prune(self, host: _Host) -> None:
        """Remove leftovers of interrupted runs, then keep the newest
        ``keep_releases``; never the current or the previous release."""
        host.stage = Stage.CLEANUP
        assert host.conn is not None
        plan = self.deploy_plan
        try:
            hostops.remove_marker(host.conn, plan.release_library, host.release, self.lines(host))
            names = hostops.list_releases(host.conn, plan.release_library, self.lines(host))
            protect = {host.release, host.current.release}
            orphans = hostops.orphan_releases(names, plan.known_releases, protect)
            kept = [name for name in names if name not in orphans]
            doomed = [(name, "interrupted run") for name in orphans]
            doomed += [(name, "old release") for name in hostops.releases_to_remove(kept, plan.keep_releases, protect)]
            for name, why in doomed:
                if hostops.remove_release(host.conn, plan.release_library, name, self.lines(host), plan.command_timeout):
                    host.result.removed.append(name)
                    self.info(host, host.stage, f"removed {why} {name}")
                else:
                    self.error(host, host.stage, f"could not remove {why} {name}")
        except (SSHError, HostOpError, OSError) as exc:
            self.error(host, host.stage, f"cleanup of old releases failed: {exc}")

    def close(self) -> None:
        """Close connections and remove the local build dir (the mirror stays)."""
        super().close()
        self.held.close()
        for path in (self.build_dir, self.hook_home):
            if path:
                shutil.rmtree(path, ignore_errors=True)


class _Rollback(_Run):
    # Undoing a deploy neither waits for promotes nor checks health: the
    # release it restores already served, and a failed gate could only switch
    # back to what is being undone.
    gated = False

    def __init__(self, plan: RollbackPlan, log: MaskingLog, callbacks: RunCallbacks) -> None:
        super().__init__(plan, log, plan.releases, callbacks)

    def rollout(self) -> Rollout:
        return Rollout(Strategy.ONE_BY_ONE if self.plan.post_release_delay > 0 else Strategy.ALL_AT_ONCE)

    def execute(self) -> Outcome:
        """Check every host has its release, pre_release everywhere, then switch."""
        self.resolved(self.plan.commit)  # type: ignore[attr-defined]
        names = {h.release for h in self.hosts}
        name = names.pop() if len(names) == 1 else ""
        if not all(self.each(self.check, self.hosts)):
            return self.refuse("rollback refused, nothing was changed: ", name)
        if not all(self.each(self.pre_release, self.hosts, stop_others=True)):
            return self.refuse("rollback stopped before any switch: ", name)
        if not self.callbacks.may_switch():
            self.error(None, Stage.SWITCH, _GATE_CLOSED)
            return self.outcome(f"rollback stopped before any switch: {_GATE_CLOSED}", name)
        self.switch_all()
        return self.outcome(release_name=name)

    def check(self, host: _Host) -> None:
        """The release to restore must exist on the host before anything changes."""
        self.connect(host)
        assert host.conn is not None
        if not hostops.release_exists(host.conn, self.plan.release_library, host.release, self.lines(host)):
            raise HostOpError(
                f"release {host.release} is missing on {host.name} (removed by keep-N cleanup?); "
                "pick a release that exists on every host"
            )
        self.info(host, host.stage, f"release {host.release} is present")

    def refuse(self, prefix: str, name: str) -> Outcome:
        """Stop before any switch; every host keeps what it had."""
        for host in self.hosts:
            if host.result.state != HostState.FAILED:
                host.result.error = host.result.error or ANOTHER_HOST_FAILED
        failed = "; ".join(f"{h.name}: {h.result.error}" for h in self.hosts if h.result.state == HostState.FAILED)
        return self.outcome(prefix + failed, name)


def _refused(
    plan: Common, log: MaskingLog, targets: Sequence[Target], exc: Exception, release: str, callbacks: RunCallbacks
) -> Outcome:
    message = log.mask(f"refused: {exc}")
    log("", Stage.PREPARE, Stream.ERROR, message)
    hosts = [HostResult(t.id, t.name, HostState.PENDING, error=message) for t in targets]
    for result in hosts:
        _call(callbacks.on_host, result)
    return Outcome(ok=False, commit=getattr(plan, "commit", ""), release_name=release, error=message, hosts=hosts)


def _execute(run: _Deploy | _Rollback, release: str) -> Outcome:
    try:
        return run.execute()
    except Exception as exc:  # noqa: BLE001 - a bug; still report honestly per host
        logger.exception("deploy engine error")
        return run.outcome(f"internal error: {exc}", release)
    finally:
        run.close()


def _call_for(gate: PromoteGate, number: int, total: int) -> str:
    """Ask the promote gate; a broken gate counts as "no promote"."""
    try:
        return gate(number, total)
    except Exception as exc:  # noqa: BLE001 - the run must end honestly, not crash mid-rollout
        logger.exception("promote gate failed")
        return f"waiting for a promote failed: {exc}"


def _call(callback: Callable[[Any], None], value: object) -> None:
    try:
        callback(value)
    except Exception:  # noqa: BLE001 - reporting must never break a deploy
        logger.exception("run callback failed")


def deploy(plan: DeployPlan, log: LogFn, callbacks: RunCallbacks = NO_CALLBACKS) -> Outcome:
    """Build ``plan``'s commit once and release it to every target, all or nothing."""
    masked = MaskingLog(log, [plan.key, *(secret for _, secret in plan.secrets)])
    try:
        validate.check_deploy_plan(plan)
        git.validate_repo_url(plan.repo_url)
        git.validate_ref_name(plan.ref)
        if plan.commit:
            git.validate_commit(plan.commit)
    except ValueError as exc:
        return _refused(plan, masked, plan.targets, exc, plan.release_name, callbacks)
    return _execute(_Deploy(plan, masked, callbacks), plan.release_name)


def rollback(plan: RollbackPlan, log: LogFn, callbacks: RunCallbacks = NO_CALLBACKS) -> Outcome:
    """Point each host's webroot at an existing release again (no checkout, no copy)."""
    masked = MaskingLog(log, [plan.key, *(secret for _, secret in plan.secrets)])
    targets = [t for t, _ in plan.releases]
    try:
        validate.check_rollback_plan(plan)
    except ValueError as exc:
        return _refused(plan, masked, targets, exc, "", callbacks)
    return _execute(_Rollback(plan, masked, callbacks), "")
