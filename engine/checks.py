"""The project config check: can Walle deploy this project, and if not, why not.

Every failure comes with a plain message and a fix. Host keys that are not pinned
yet are fetched here (and only here), shown by fingerprint, and returned in the
report so the caller can pin them; the deploy engine itself never trusts an
unpinned key.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

from . import git, hostops, validate
from .plan import Secret, Stream, Target
from .ssh import Connection, HostKeyError, LoginError, SSHError, fetch_host_key, fingerprint
from .text import N_

MIN_FREE_MB = 100
_REACH_FIX = N_("check the address and port, that sshd runs, and the firewall")

# The names of the checks, as the report's first column shows them; listed so
# that makemessages finds them (results compare names in English).
CHECK_NAMES = (
    N_("settings"), N_("tools"), N_("workspace"), N_("repository"), N_("repository host key"),
    N_("reachable"), N_("host key"), N_("login"), N_("rsync"), N_("release library"),
    N_("webroot parent"), N_("webroot"), N_("disk space"),
)


@dataclass(frozen=True)
class CheckResult:
    """One line of the check report. ``host`` is "" for the deploy host and repository.

    ``message`` and ``fix`` are English; those made with ``N_`` also carry
    their template, so the web side can show them translated.
    """

    name: str
    host: str
    ok: bool
    message: str
    fix: str = ""
    warning: bool = False  # ok, but worth a look (low disk space, key pinned just now)


@dataclass
class CheckReport:
    """All results, plus host keys the caller should pin."""

    results: list[CheckResult] = field(default_factory=list)
    pinned: dict[int, str] = field(default_factory=dict)  # target id -> key line
    repo_host_key: str = ""  # git server key line to pin; "" if nothing to pin

    @property
    def ok(self) -> bool:
        """True if no check failed (warnings allowed)."""
        return all(result.ok for result in self.results)


def check_project(
    *,
    repo_url: str,
    repo_host_key: str,
    key: Secret,
    workspace: str,
    run_user: str,
    webroot: str,
    release_library: str,
    targets: Sequence[Target],
    connect_timeout: int = 10,
    max_parallel: int = 5,
) -> CheckReport:
    """Check the deploy host, the repository and every target; return the report."""
    report = CheckReport()
    settings = _check_settings(workspace, run_user, webroot, release_library)
    report.results += settings
    if not all(r.ok for r in settings):
        return report  # paths we cannot trust are not sent to any host
    report.results += _check_deploy_host(workspace)
    repo_results, report.repo_host_key = _check_repository(repo_url, repo_host_key, key, connect_timeout)
    report.results += repo_results
    layout = _Layout(run_user, webroot, release_library, key, connect_timeout)
    with ThreadPoolExecutor(max_workers=max(1, min(max_parallel, len(targets) or 1))) as pool:
        for target, (results, pinned) in zip(targets, pool.map(layout.check_host, targets), strict=True):
            report.results += results
            if pinned:
                report.pinned[target.id] = pinned
    return report


def _fail(name: str, host: str, message: str, fix: str) -> CheckResult:
    return CheckResult(name, host, False, message, fix)


def _check_settings(workspace: str, run_user: str, webroot: str, release_library: str) -> list[CheckResult]:
    try:
        validate.check_abs_path("workspace", workspace)
        validate.check_layout(webroot, release_library)
        validate.check_user(run_user)
    except validate.PlanError as exc:
        return [_fail("settings", "", str(exc), N_("correct the project's paths and run user"))]
    return [CheckResult("settings", "", True, N_("paths and run user are valid"))]


def _check_deploy_host(workspace: str) -> list[CheckResult]:
    results = []
    missing = [tool for tool in ("git", "rsync", "ssh") if shutil.which(tool) is None]
    if missing:
        results.append(
            _fail(
                "tools",
                "",
                N_("missing on the deploy host: {tools}", tools=", ".join(missing)),
                N_("install them on the Walle worker (apt install git rsync openssh-client)"),
            )
        )
    else:
        results.append(CheckResult("tools", "", True, N_("git, rsync and ssh are installed")))
    try:
        os.makedirs(workspace, mode=0o700, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=workspace):
            pass
    except OSError as exc:
        results.append(
            _fail(
                "workspace",
                "",
                N_("workspace {workspace} is not writable: {error}", workspace=workspace, error=exc.strerror),
                N_("create it and make it owned by the user the Walle worker runs as"),
            )
        )
    else:
        results.append(CheckResult("workspace", "", True, N_("workspace {workspace} is writable", workspace=workspace)))
    return results


def _check_repository(url: str, host_key: str, key: Secret, timeout: int) -> tuple[list[CheckResult], str]:
    """ls-remote with the project key; fetch the server key if it is not pinned."""
    try:
        ssh_host = git.repo_ssh_host(url)
    except ValueError as exc:
        return [_fail("repository", "", str(exc), N_("use an ssh://, https:// or user@host:path URL"))], ""
    results, fetched = [], ""
    if ssh_host and not host_key.strip():
        try:
            fetched = fetch_host_key(ssh_host[0], ssh_host[1], timeout)
        except SSHError as exc:
            return [_fail("repository", "", str(exc), N_("check the URL's host and port and the network"))], ""
        host_key = fetched
        results.append(
            CheckResult(
                "repository host key",
                "",
                True,
                N_("git server key was not pinned; fetched {fingerprint} (pinned once the repository reads)",
                   fingerprint=fingerprint(fetched)),
                N_("compare it with the git server's fingerprint"),
                warning=True,
            )
        )
    output: list[str] = []

    def collect(stream: Stream, text: str) -> None:
        # Keep git's and ssh's actual reason, not its banner art or boilerplate.
        text = text.strip()
        if stream == Stream.STDERR and text and not text.startswith(("@", "Please make sure", "and the repository")):
            output.append(text)

    status = git.ls_remote(url, host_key, key, collect, timeout=max(timeout, 30))
    if status == 0:
        results.append(CheckResult("repository", "", True, N_("repository is reachable with the project key")))
    else:
        detail = "; ".join(output[-3:]) or N_("git exit status {status}", status=status)
        results.append(
            _fail(
                "repository",
                "",
                N_("cannot read the repository: {detail}", detail=detail),
                N_("add the project's public key as a (read-only) deploy key on the git server, "
                   "and check the URL and the pinned git server key"),
            )
        )
    # Pin the git server's key only once the repository was read with it.
    return results, fetched if status == 0 else ""


@dataclass(frozen=True)
class _Layout:
    run_user: str
    webroot: str
    library: str
    key: Secret
    timeout: int

    def check_host(self, target: Target) -> tuple[list[CheckResult], str]:
        """All checks for one target; (results, host key to pin or "")."""
        results: list[CheckResult] = []
        pinned = ""
        if not target.host_key.strip():
            pinned, result = self._fetch_key(target)
            results.append(result)
            if not pinned:
                return results, ""
            target = replace(target, host_key=pinned)
        conn = Connection(target, self.run_user, self.key, connect_timeout=self.timeout)
        problems = self._open(conn)
        if problems:
            # Only a host we logged in to has shown the key is the one we
            # expect to trust; a failed login pins nothing.
            return results + problems, ""
        with conn:
            if not pinned:
                matches = N_("host key matches the pinned {fingerprint}", fingerprint=fingerprint(target.host_key))
                results.append(CheckResult("host key", target.name, True, matches))
            results.append(CheckResult("login", target.name, True, N_("logged in as {user}", user=self.run_user)))
            results += self._remote_checks(conn)
        return results, pinned

    def _fetch_key(self, target: Target) -> tuple[str, CheckResult]:
        """Fetch an unpinned host key; ("", failure) if the host does not answer."""
        try:
            key_line = fetch_host_key(target.address, target.port, self.timeout)
        except SSHError as exc:
            return "", _fail("reachable", target.name, str(exc), _REACH_FIX)
        message = N_("host key was not pinned; fetched {fingerprint} (pinned once login works)",
                     fingerprint=fingerprint(key_line))
        fix = N_("compare it with `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on the host")
        return key_line, CheckResult("host key", target.name, True, message, fix, warning=True)

    def _open(self, conn: Connection) -> list[CheckResult]:
        """Log in; on failure, the results that say which step failed."""
        name = conn.target.name
        try:
            conn.open()
        except HostKeyError as exc:
            fix = N_("if the host was reinstalled, a Maintainer re-pins its key; otherwise treat it as a possible attack")
            return [_fail("host key", name, str(exc), fix)]
        except LoginError as exc:
            fix = N_("append the project's public key to ~{user}/.ssh/authorized_keys", user=self.run_user)
            return [CheckResult("reachable", name, True, N_("host answers SSH")), _fail("login", name, str(exc), fix)]
        except SSHError as exc:
            return [_fail("reachable", name, str(exc), _REACH_FIX)]
        return []

    def _remote_checks(self, conn: Connection) -> list[CheckResult]:
        return [
            self._rsync(conn),
            self._library(conn),
            self._webroot_parent(conn),
            self._webroot(conn),
            self._disk(conn),
        ]

    def _ok(self, conn: Connection, argv: list[str]) -> bool:
        status, _ = hostops.capture(conn, argv, _ignore)
        return status == 0

    def _rsync(self, conn: Connection) -> CheckResult:
        if self._ok(conn, ["rsync", "--version"]):
            return CheckResult("rsync", conn.target.name, True, N_("rsync is installed"))
        return _fail("rsync", conn.target.name, N_("rsync is not installed"), N_("install it (apt install rsync)"))

    def _library(self, conn: Connection) -> CheckResult:
        lib, name, user = self.library, conn.target.name, self.run_user
        if not self._ok(conn, ["mkdir", "-p", "--", lib]):
            return _fail(
                "release library",
                name,
                N_("cannot create {path}", path=lib),
                N_("create it: mkdir -p {path} && chown {user} {path}", path=lib, user=user),
            )
        if not self._ok(conn, ["test", "-w", lib]):
            return _fail(
                "release library", name, N_("{path} is not writable by {user}", path=lib, user=user),
                N_("chown {user} {path}", path=lib, user=user),
            )
        return CheckResult("release library", name, True, N_("{path} exists and is writable", path=lib))

    def _webroot_parent(self, conn: Connection) -> CheckResult:
        parent, name, user = posixpath.dirname(self.webroot), conn.target.name, self.run_user
        if not self._ok(conn, ["test", "-d", parent]):
            return _fail(
                "webroot parent",
                name,
                N_("{path} does not exist", path=parent),
                N_("create it: mkdir -p {path} && chown {user} {path}", path=parent, user=user),
            )
        if not self._ok(conn, ["test", "-w", parent]):
            return _fail(
                "webroot parent",
                name,
                N_("{path} is not writable by {user}", path=parent, user=user),
                N_("chown {user} {path} (the webroot link is replaced there)", path=parent, user=user),
            )
        return CheckResult("webroot parent", name, True, N_("{path} exists and is writable", path=parent))

    def _webroot(self, conn: Connection) -> CheckResult:
        name = conn.target.name
        status, out = hostops.capture(conn, ["readlink", "--", self.webroot], _ignore)
        if status == 0:
            target = out[0] if out else "?"
            return CheckResult("webroot", name, True, N_("{path} is a symlink to {target}", path=self.webroot, target=target))
        if self._ok(conn, ["test", "-e", self.webroot]):
            return _fail(
                "webroot",
                name,
                N_("{path} is a real directory or file, not a symlink", path=self.webroot),
                N_("move it aside (mv {path} {path}.old); Walle never deletes it", path=self.webroot),
            )
        return CheckResult(
            "webroot", name, True, N_("{path} does not exist yet; the first deploy creates it", path=self.webroot)
        )

    def _disk(self, conn: Connection) -> CheckResult:
        name = conn.target.name
        free = hostops.free_kib(conn, self.library, _ignore)
        if free is None:
            return CheckResult("disk space", name, True, N_("could not read free disk space"), warning=True)
        free_mb = free // 1024
        if free_mb < MIN_FREE_MB:
            return CheckResult(
                "disk space",
                name,
                True,
                N_("only {free} MB free in {path}", free=free_mb, path=self.library),
                N_("free some space or lower the number of releases kept"),
                warning=True,
            )
        return CheckResult("disk space", name, True, N_("{free} MB free in {path}", free=free_mb, path=self.library))


def _ignore(stream: Stream, text: str) -> None:
    """Discard command output the checks do not need."""
