"""Plain values that describe one deploy or rollback run.

This package never imports Django: ``releases.tasks`` builds these objects from
the models and hands them to :mod:`engine.pipeline`. Everything the
engine needs travels in here, so the engine can be tested with plain values.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from .health import NO_CHECK, HealthCheck
from .rollout import Rollout, Strategy
from .sandbox import DEFAULT_SANDBOX, SandboxSpec

# A release directory Walle made: YYYYmmdd-HHMMSS-<ticket id>. Cleanup only ever
# touches names that match, so foreign directories in a release library survive.
# \Z, not $: "$" also matches before a trailing newline, and "name\n" is no release.
RELEASE_NAME_RE = re.compile(r"^\d{8}-\d{6}-\d+\Z")


class Stage(StrEnum):
    PREPARE = "prepare"
    CHECKOUT = "checkout"
    PRE_DEPLOY = "pre_deploy"
    POST_DEPLOY = "post_deploy"
    TRANSFER = "transfer"
    PRE_RELEASE = "pre_release"
    SWITCH = "switch"
    POST_RELEASE = "post_release"
    HEALTH_CHECK = "health_check"
    CLEANUP = "cleanup"
    FINISH = "finish"


class Stream(StrEnum):
    STDOUT = "stdout"
    STDERR = "stderr"
    INFO = "info"  # Walle's own narration ("connecting", "switched to ...")
    ERROR = "error"  # Walle's own failure messages


class RefKind(StrEnum):
    BRANCH = "branch"
    TAG = "tag"


class HostState(StrEnum):
    PENDING = "pending"
    PREPARED = "prepared"  # release dir transferred and pre_release done
    SWITCHED = "switched"  # webroot points at the new release
    DONE = "done"  # switched and post_release succeeded
    FAILED = "failed"
    CLEANED = "cleaned"  # failed run: the new release dir was removed again
    REVERTED = "reverted"  # switched, then switched back to what it served before (a failed gate)


@dataclass(frozen=True)
class Secret:
    """A secret string that never shows in repr(), str() or logs."""

    value: str = field(repr=False)

    def __str__(self) -> str:
        return "[secret]"


@dataclass(frozen=True)
class Target:
    """One target host. ``host_key`` is the pinned OpenSSH public key line
    (``ssh-ed25519 AAAA...``); empty means not pinned, and the engine refuses."""

    id: int
    address: str
    port: int = 22
    host_key: str = ""

    @property
    def name(self) -> str:
        return self.address if self.port == 22 else f"{self.address}:{self.port}"


@dataclass(frozen=True)
class Hooks:
    pre_deploy: tuple[str, ...] = ()
    post_deploy: tuple[str, ...] = ()
    pre_release: tuple[str, ...] = ()
    post_release: tuple[str, ...] = ()


@dataclass(frozen=True)
class Common:
    """What deploys and rollbacks share: who, where, how to log in."""

    project: str
    environment: str
    ticket_id: int
    ticket_title: str
    ref_kind: RefKind
    ref: str  # branch or tag name, as shown in WALLE_BRANCH / WALLE_TAG
    run_user: str
    webroot: str
    release_library: str
    hooks: Hooks
    post_release_delay: int
    max_parallel: int
    key: Secret  # OpenSSH private key text, used for targets and the git server
    command_timeout: int = 600  # per hook line / per remote command, seconds
    connect_timeout: int = 10
    deployed_by: str = ""  # the Walle user who started the run (WALLE_DEPLOY_USER)
    # How deploy-host hooks are confined (see engine.sandbox).
    sandbox: SandboxSpec = DEFAULT_SANDBOX
    # The project's secrets: environment variables for its hooks, masked in
    # every log line. On targets they travel over the SSH channel's stdin,
    # never on a command line.
    secrets: tuple[tuple[str, Secret], ...] = ()
    # How the switch spreads over the hosts; None: today's rule (one by one
    # when post_release_delay > 0, else all at once). The delay is the pause
    # between batches.
    rollout: Rollout | None = None
    health: HealthCheck = NO_CHECK  # the gate after each batch

    @property
    def effective_rollout(self) -> Rollout:
        if self.rollout is not None:
            return self.rollout
        return Rollout(Strategy.ONE_BY_ONE if self.post_release_delay > 0 else Strategy.ALL_AT_ONCE)


@dataclass(frozen=True)
class DeployPlan(Common):
    repo_url: str = ""
    repo_host_key: str = ""  # pinned key line of the git server (ssh URLs)
    commit: str = ""  # full SHA picked on the ticket; "" means the ref's tip
    workspace: str = ""  # on the deploy host; the mirror and build dirs live here
    excludes: tuple[str, ...] = ()
    # Compress the copy to the targets (zstd, else zlib); off suits a fast LAN.
    compress: bool = True
    release_name: str = ""  # YYYYmmdd-HHMMSS-<ticket>
    keep_releases: int = 10
    targets: tuple[Target, ...] = ()
    # Release names the caller knows as proper releases (they went live or
    # belong to a deploy that succeeded). Other Walle-named dirs on a host are
    # leftovers of interrupted runs and are removed after a successful deploy,
    # so they never take keep-N slots. None: no such knowledge, remove none.
    known_releases: frozenset[str] | None = None
    # A retry of a failed run: the release dir of this name may exist already;
    # a host whose copy an earlier run completed (its marker names this
    # commit) is not copied again. Hosts in done_targets already serve the
    # release with post_release done and are left alone if they still do.
    reuse_prepared: bool = False
    done_targets: frozenset[int] = frozenset()
    # A failure before the switch keeps the release dirs of the hosts that
    # were fully prepared (for a retry) instead of removing them.
    keep_prepared: bool = False


@dataclass(frozen=True)
class RollbackPlan(Common):
    """Point each host's webroot at an existing release again."""

    commit: str = ""
    # (target, release name to restore on it)
    releases: tuple[tuple[Target, str], ...] = ()


@dataclass
class HostResult:
    target_id: int
    name: str
    state: HostState = HostState.PENDING
    release: str = ""  # the release the webroot points at when the run ended
    previous_release: str = ""  # what the webroot pointed at before the run
    error: str = ""
    duration: float = 0.0
    removed: list[str] = field(default_factory=list)  # release dirs this run deleted from the host


@dataclass
class Outcome:
    ok: bool
    commit: str = ""
    release_name: str = ""
    error: str = ""
    hosts: list[HostResult] = field(default_factory=list)
    failed_batch: str = ""  # "2/3" when a batch of the rollout failed


# log(host, stage, stream, text): host is "" for the deploy host itself.
LogFn = Callable[[str, Stage, Stream, str], None]
