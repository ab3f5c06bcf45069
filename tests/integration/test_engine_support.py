"""Shared helpers for the engine's real-host tests (test_engine_*.py); holds no tests.

Each test builds an :class:`Engine` from the infra fixtures (three clean targets, a
git server): it authorises a fresh deploy key on both, gives the test its own
repository and workspace, builds plans and collects every log line.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from engine import pipeline, runtime
from engine.keys import generate_ed25519
from engine.plan import (
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
from engine.ssh import KEY_DIR_PREFIX
from tests.infra.hosts import GitServer, TargetHost, authorize_key

PRIVATE_KEY, PUBLIC_KEY, _ = generate_ed25519("walle-engine-tests")
WEBROOT = "/data/nginx/website"
LIBRARY = "/data/releases"
_tickets = itertools.count(100)

LogLine = tuple[str, Stage, Stream, str]


def target_of(host: TargetHost, target_id: int) -> Target:
    """The plan Target for an infra host, pinned to its current key."""
    return Target(target_id, host.address, host.port, host.host_key)


class Engine:
    """One test's view: its repo, workspace, targets and collected log."""

    def __init__(self, hosts: Sequence[TargetHost], git_server: GitServer, tmp_path: Path, test_name: str) -> None:
        authorize_key("www", PUBLIC_KEY)
        authorize_key("git", PUBLIC_KEY)
        self.hosts = list(hosts)
        self.git = git_server
        self.workspace = tmp_path / "workspace"
        self.repo = re.sub(r"[^A-Za-z0-9._-]+", "-", test_name).strip("-.")[:60]
        git_server.create_repo(self.repo)
        self.lines: list[LogLine] = []
        self._lock = threading.Lock()
        self.on_log: Callable[[LogLine], None] | None = None

    # -- repository

    def commit(
        self, files: dict[str, str], message: str = "change", branch: str = "master", tag: str | None = None
    ) -> str:
        return self.git.commit(self.repo, files, message, branch=branch, tag=tag)

    # -- plans

    def targets(self, hosts: Sequence[TargetHost] | None = None) -> tuple[Target, ...]:
        chosen = self.hosts if hosts is None else hosts
        return tuple(target_of(host, index + 1) for index, host in enumerate(chosen))

    def plan(self, **changes: object) -> DeployPlan:
        ticket = next(_tickets)
        plan = DeployPlan(
            project="website",
            environment="production",
            ticket_id=ticket,
            ticket_title=f"ticket {ticket}",
            ref_kind=RefKind.BRANCH,
            ref="master",
            run_user="www",
            webroot=WEBROOT,
            release_library=LIBRARY,
            hooks=Hooks(),
            post_release_delay=0,
            max_parallel=3,
            key=Secret(PRIVATE_KEY),
            command_timeout=120,
            connect_timeout=5,
            deployed_by="alice",
            repo_url=self.git.url(self.repo),
            repo_host_key=self.git.host_key,
            workspace=str(self.workspace),
            release_name=f"{time.strftime('%Y%m%d-%H%M%S')}-{ticket}",
            keep_releases=10,
            targets=self.targets(),
        )
        return dataclasses.replace(plan, **changes)

    def rollback_plan(self, releases: dict[TargetHost, str], **changes: object) -> RollbackPlan:
        ticket = next(_tickets)
        base = self.plan(ticket_id=ticket)
        common = {
            f.name: getattr(base, f.name)
            for f in dataclasses.fields(RollbackPlan)
            if f.name not in ("commit", "releases")
        }
        chosen = [
            (target_of(host, self.hosts.index(host) + 1 if host in self.hosts else 99), name)
            for host, name in releases.items()
        ]
        return dataclasses.replace(RollbackPlan(**common, releases=tuple(chosen)), **changes)

    # -- running

    def log(self, host: str, stage: Stage, stream: Stream, text: str) -> None:
        line = (host, stage, stream, text)
        with self._lock:
            self.lines.append(line)
        if self.on_log is not None:
            self.on_log(line)

    def deploy(self, **changes: object) -> Outcome:
        return self.deploy_plan(self.plan(**changes))

    def deploy_plan(self, plan: DeployPlan) -> Outcome:
        before = key_dirs()
        outcome = pipeline.deploy(plan, self.log)
        self.assert_no_secret(outcome)
        assert key_dirs() - before == set(), "a temporary key file outlived the run"
        return outcome

    def rollback(self, releases: dict[TargetHost, str], **changes: object) -> Outcome:
        before = key_dirs()
        outcome = pipeline.rollback(self.rollback_plan(releases, **changes), self.log)
        self.assert_no_secret(outcome)
        assert key_dirs() - before == set(), "a temporary key file outlived the run"
        return outcome

    # -- inspecting

    def texts(self, *, host: str | None = None, stage: Stage | None = None, stream: Stream | None = None) -> list[str]:
        return [
            text
            for h, s, st, text in self.lines
            if (host is None or h == host) and (stage is None or s == stage) and (stream is None or st == stream)
        ]

    def assert_no_secret(self, outcome: Outcome) -> None:
        body = [line for line in PRIVATE_KEY.splitlines() if not line.startswith("-----")]
        everything = repr(self.lines) + repr(outcome)
        for line in body:
            assert line not in everything, "private key material reached the log or the outcome"


def key_dirs() -> set[str]:
    """Temporary ssh key dirs that exist right now (security.md T20): in Walle's
    private key root, and (never, but checked) in the shared temp dir."""
    places = (Path(runtime.key_root()), Path(tempfile.gettempdir()))
    return {str(p) for place in places for p in place.glob(KEY_DIR_PREFIX + "*")}


def current_release(host: TargetHost) -> str:
    """Release name the host's webroot points at ("" if there is no link)."""
    try:
        target = host.readlink(WEBROOT)
    except FileNotFoundError:
        return ""
    assert target.startswith(LIBRARY + "/"), target
    return target.rsplit("/", 1)[1]


def releases_on(host: TargetHost) -> list[str]:
    """Entries of the host's release library."""
    return sorted(p.name for p in host.data_path(LIBRARY).iterdir())


def release_dir(host: TargetHost, name: str) -> Path:
    """Outside path of a release directory on the host."""
    return host.data_path(f"{LIBRARY}/{name}")
