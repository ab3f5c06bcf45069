"""Repository access on the deploy host: a bare mirror per project, exports by SHA.

User text (URL, branch, tag, commit) never reaches git where it could be read as
an option: URLs are allowlisted, refs are looked up as exact ``refs/heads/<x>`` or
``refs/tags/<x>`` names, commits must be full SHAs, and ``--end-of-options`` /
``--`` close every option list.
"""

from __future__ import annotations

import fcntl
import os
import re
import shlex
import shutil
import subprocess
import tarfile
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from . import local
from .plan import RefKind, Secret, Stream
from .ssh import KeyFiles, key_files, known_hosts_line, ssh_argv

GitLog = Callable[[Stream, str], None]

MIRROR_DIR = "mirror.git"
SHA_RE = re.compile(r"^[0-9a-f]{40}$")
_SCP_RE = re.compile(r"^(?P<user>[A-Za-z0-9._][A-Za-z0-9._-]*)@(?P<host>[A-Za-z0-9][A-Za-z0-9.-]*):(?P<path>[^:].*)$")
_HOST_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]*$")
_USER_RE = re.compile(r"^[A-Za-z0-9._][A-Za-z0-9._-]*$")
_BAD_REF_CHARS_RE = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")
_PARSE_TIMEOUT = 60  # local-only git commands (rev-parse, log, diff)


def _has_space_or_control(text: str) -> bool:
    return any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text)


def validate_repo_url(url: str) -> str:
    """Return ``url`` if it is an ``ssh://``, ``https://`` or ``user@host:path`` URL.

    Everything else (``ext::``, ``file:``, ``http:``, local paths, a leading
    ``-``, ``ProxyCommand``, whitespace) raises ValueError: these are the ways a
    repository URL has been turned into command execution (CVE-2017-1000117,
    CVE-2022-24439).
    """
    if not url:
        raise ValueError("repository URL is empty")
    if _has_space_or_control(url):
        raise ValueError("repository URL must not contain spaces or control characters")
    if url.startswith("-") or "proxycommand" in url.lower():
        raise ValueError("repository URL looks like an ssh option, not a repository")
    if url.startswith("ssh://"):
        _check_ssh_url(url)
    elif url.startswith("https://"):
        _check_https_url(url)
    elif "://" in url or "::" in url or not _SCP_RE.fullmatch(url):
        raise ValueError("repository URL must be ssh://host/path, https://host/path or user@host:path")
    return url


def _check_ssh_url(url: str) -> None:
    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError("repository URL has an invalid port") from exc
    if not parts.hostname or not _HOST_RE.fullmatch(parts.hostname):
        raise ValueError("repository URL has no valid host name")
    if parts.username is not None and not _USER_RE.fullmatch(parts.username):
        raise ValueError("repository URL has an invalid user name")
    if parts.password is not None:
        raise ValueError("repository URL must not contain a password; use the project's SSH key")
    if port is not None and not 0 < port < 65536:
        raise ValueError("repository URL has an invalid port")
    if len(parts.path) < 2:
        raise ValueError("repository URL has no repository path")


def _check_https_url(url: str) -> None:
    parts = urllib.parse.urlsplit(url)
    if not parts.hostname or not _HOST_RE.fullmatch(parts.hostname):
        raise ValueError("repository URL has no valid host name")
    if parts.username is not None or parts.password is not None:
        # Credentials in a URL end up in logs and process lists.
        raise ValueError("repository URL must not contain credentials; use an ssh URL with a deploy key")


def repo_ssh_host(url: str) -> tuple[str, int] | None:
    """(host, port) the git server's SSH host key is pinned for, or None for https."""
    validate_repo_url(url)
    if url.startswith("https://"):
        return None
    if url.startswith("ssh://"):
        parts = urllib.parse.urlsplit(url)
        assert parts.hostname is not None
        return parts.hostname, parts.port or 22
    match = _SCP_RE.fullmatch(url)
    assert match is not None
    return match["host"], 22


def validate_ref_name(name: str) -> str:
    """Return ``name`` if it is a plain branch/tag name; ValueError otherwise.

    Follows ``git check-ref-format --branch`` and additionally refuses a leading
    ``-`` and any whitespace or control character. Names like ``x$(id)`` remain
    valid git refs; they are safe because they only ever travel as argv words.
    """
    if not name:
        raise ValueError("branch/tag name is empty")
    if name.startswith("-"):
        raise ValueError(f"branch/tag name {name!r} must not start with '-'")
    if _BAD_REF_CHARS_RE.search(name) or _has_space_or_control(name):
        raise ValueError(f"branch/tag name {name!r} contains whitespace, control or special characters")
    if ".." in name or "@{" in name or name in ("@", "HEAD"):
        raise ValueError(f"branch/tag name {name!r} is not allowed")
    if name.startswith("/") or name.endswith("/") or name.endswith(".") or "//" in name:
        raise ValueError(f"branch/tag name {name!r} has a misplaced '/' or '.'")
    for part in name.split("/"):
        if part.startswith(".") or part.endswith(".lock"):
            raise ValueError(f"branch/tag name {name!r} has a component starting with '.' or ending in '.lock'")
    return name


def validate_commit(sha: str) -> str:
    """Return ``sha`` if it is a full lowercase 40-hex commit id."""
    if not SHA_RE.fullmatch(sha or ""):
        raise ValueError(f"commit {sha!r} must be a full 40-character SHA")
    return sha


def git_env(files: KeyFiles | None, *, allow_protocols: str = "ssh:https") -> dict[str, str]:
    """Environment for network git: only our key and pinned host key, no prompts."""
    env = local.safe_env(
        {
            "GIT_ALLOW_PROTOCOL": allow_protocols,
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_CONFIG_NOSYSTEM": "1",
        }
    )
    if files is not None:
        env["GIT_SSH_COMMAND"] = shlex.join(ssh_argv(files))
    return env


@contextmanager
def repo_credentials(repo_url: str, host_key: str, key: Secret) -> Iterator[KeyFiles]:
    """Temp key + known_hosts holding the pinned git server key (ssh URLs)."""
    ssh_host = repo_ssh_host(repo_url)
    lines: list[str] = []
    if ssh_host is not None:
        if not host_key.strip():
            raise ValueError("the git server's host key is not pinned; run the config check to pin it")
        lines.append(known_hosts_line(ssh_host[0], ssh_host[1], host_key))
    with key_files(key, lines) as files:
        yield files


def mirror_path(workspace: str) -> str:
    """Where the project's bare mirror lives."""
    return os.path.join(workspace, MIRROR_DIR)


def mirror(repo_url: str, host_key: str, key: Secret, workspace: str, log: GitLog, *, timeout: int = 600) -> str:
    """Clone (first time) or fetch-with-prune the project's mirror; return its path.

    A lock file serialises runs sharing a workspace so two fetches never race.
    The first clone goes to a temporary name and is renamed when complete, so an
    interrupted clone never leaves a half mirror behind.
    """
    validate_repo_url(repo_url)
    os.makedirs(workspace, mode=0o700, exist_ok=True)
    path = mirror_path(workspace)
    with _workspace_lock(workspace), repo_credentials(repo_url, host_key, key) as files:
        env = git_env(files)
        if os.path.isdir(path):
            _run_git(["git", "-C", path, "remote", "set-url", "origin", repo_url], env, timeout, log)
            _run_git(["git", "-C", path, "fetch", "--prune", "--prune-tags", "origin"], env, timeout, log)
            return path
        partial = path + ".partial"
        shutil.rmtree(partial, ignore_errors=True)
        _run_git(["git", "clone", "--mirror", "--", repo_url, partial], env, timeout, log)
        os.rename(partial, path)
    return path


def _run_git(argv: list[str], env: dict[str, str], timeout: int, log: GitLog) -> None:
    log(Stream.INFO, "$ " + shlex.join(argv))
    status = local.run(argv, env=env, timeout=timeout, on_line=log)
    if status != 0:
        verb = argv[3] if argv[1] == "-C" else argv[1]
        raise GitError(f"git {verb} failed (exit status {status})")


def ls_remote(repo_url: str, host_key: str, key: Secret, log: GitLog, *, timeout: int = 60) -> int:
    """``git ls-remote --heads`` with our key and the given server key; exit status."""
    validate_repo_url(repo_url)
    with repo_credentials(repo_url, host_key, key) as files:
        argv = ["git", "ls-remote", "--heads", repo_url]
        return local.run(argv, env=git_env(files), timeout=timeout, on_line=log)


class GitError(RuntimeError):
    """A git command failed; the message is safe to show."""


@contextmanager
def _workspace_lock(workspace: str) -> Iterator[None]:
    fd = os.open(os.path.join(workspace, ".walle.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _git(workspace: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a local-only git command in the mirror and capture its output."""
    result = subprocess.run(
        ["git", "--git-dir", mirror_path(workspace), *args],
        capture_output=True,
        text=True,
        errors="replace",
        env=git_env(None, allow_protocols=""),
        timeout=_PARSE_TIMEOUT,
        stdin=subprocess.DEVNULL,
    )
    if check and result.returncode != 0:
        raise GitError(f"git {args[0]} failed: {result.stderr.strip()[:500]}")
    return result


def list_refs(workspace: str) -> dict[str, list[str]]:
    """Branches (by name) and tags (newest first) in the mirror."""
    heads = _git(workspace, "for-each-ref", "--format=%(refname)", "--sort=refname", "refs/heads/").stdout
    tags = _git(workspace, "for-each-ref", "--format=%(refname)", "--sort=-creatordate", "refs/tags/").stdout
    return {
        "branches": [line.removeprefix("refs/heads/") for line in heads.splitlines() if line],
        "tags": [line.removeprefix("refs/tags/") for line in tags.splitlines() if line],
    }


def full_ref(workspace: str, ref_kind: RefKind, ref: str) -> str:
    """``refs/heads/<ref>`` or ``refs/tags/<ref>`` if that exact ref exists; else ValueError."""
    validate_ref_name(ref)
    name = ("refs/heads/" if RefKind(ref_kind) == RefKind.BRANCH else "refs/tags/") + ref
    # Compare against the full list rather than asking git to match a pattern:
    # exact string equality, no globbing, no prefix matches.
    existing = _git(workspace, "for-each-ref", "--format=%(refname)").stdout.splitlines()
    if name not in existing:
        raise ValueError(f"{RefKind(ref_kind).value} {ref!r} does not exist in the repository")
    return name


def _peel(workspace: str, name: str) -> str:
    result = _git(workspace, "rev-parse", "--verify", "--quiet", "--end-of-options", name + "^{commit}", check=False)
    sha = result.stdout.strip()
    if result.returncode != 0 or not SHA_RE.fullmatch(sha):
        raise ValueError(f"{name} does not point at a commit")
    return sha


def resolve(workspace: str, ref_kind: RefKind, ref: str, commit: str = "") -> str:
    """Full SHA to deploy: the ref's tip, or ``commit`` if it is reachable from the ref."""
    tip = _peel(workspace, full_ref(workspace, ref_kind, ref))
    if not commit:
        return tip
    validate_commit(commit)
    sha = _peel(workspace, commit)
    reachable = _git(workspace, "merge-base", "--is-ancestor", sha, tip, check=False)
    if reachable.returncode != 0:
        raise ValueError(f"commit {commit} is not on {RefKind(ref_kind).value} {ref!r}")
    return sha


def recent_commits(workspace: str, ref_kind: RefKind, ref: str, limit: int = 50) -> list[dict[str, str]]:
    """The newest ``limit`` commits on a branch or tag, for the ticket form."""
    name = full_ref(workspace, ref_kind, ref)
    fmt = "%H%x1f%h%x1f%an%x1f%aI%x1f%s%x1e"
    out = _git(workspace, "log", f"--max-count={int(limit)}", f"--format={fmt}", "--end-of-options", name, "--").stdout
    return _parse_log(out)


def _parse_log(out: str) -> list[dict[str, str]]:
    commits = []
    for record in out.split("\x1e"):
        fields = record.strip("\n").split("\x1f")
        if len(fields) == 5:
            sha, short, author, date, message = fields
            commits.append({"sha": sha, "short": short, "author": author, "date": date, "message": message})
    return commits


def compare(workspace: str, from_sha: str, to_sha: str) -> dict[str, list]:
    """Commits in ``from..to``, the files changed between them (status, path),
    and ``behind``: commits of ``from`` that ``to`` lacks, so a caller can warn
    that deploying ``to`` over ``from`` takes those away again."""
    validate_commit(from_sha)
    validate_commit(to_sha)
    fmt = "%H%x1f%h%x1f%an%x1f%aI%x1f%s%x1e"
    log_out = _git(workspace, "log", f"--format={fmt}", "--end-of-options", f"{from_sha}..{to_sha}", "--").stdout
    behind_out = _git(workspace, "log", f"--format={fmt}", "--end-of-options", f"{to_sha}..{from_sha}", "--").stdout
    diff_out = _git(workspace, "diff", "--name-status", "--no-renames", "-z", from_sha, to_sha, "--").stdout
    parts = diff_out.split("\0")
    files = [(parts[i], parts[i + 1]) for i in range(0, len(parts) - 1, 2) if parts[i]]
    return {"commits": _parse_log(log_out), "files": files, "behind": _parse_log(behind_out)}


def export(workspace: str, sha: str, dest: str, *, timeout: int = 600) -> None:
    """Write exactly commit ``sha``'s tree into the new directory ``dest`` (no .git).

    ``git archive`` streams a tar that is unpacked with tarfile's "data" filter,
    which refuses absolute paths, ``..`` and links pointing outside ``dest``.
    """
    validate_commit(sha)
    os.makedirs(dest, mode=0o755)  # fails if it exists: always a fresh directory
    proc = subprocess.Popen(
        ["git", "--git-dir", mirror_path(workspace), "archive", "--format=tar", sha],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=git_env(None, allow_protocols=""),
    )
    timer = threading.Timer(timeout, proc.kill)  # a stuck archive cannot hang the run
    timer.start()
    try:
        assert proc.stdout is not None and proc.stderr is not None
        with tarfile.open(fileobj=proc.stdout, mode="r|") as archive:
            archive.extractall(dest, filter="data")
        stderr = proc.stderr.read().decode(errors="replace")
        status = proc.wait()
    finally:
        timer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if status != 0:
        raise GitError(f"git archive failed (exit {status}): {stderr.strip()[:500]}")
