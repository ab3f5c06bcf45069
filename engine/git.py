"""Repository access on the deploy host: a bare mirror per project, exports by SHA.

User text (URL, branch, tag, commit) never reaches git where it could be read as
an option: URLs are allowlisted, refs are looked up as exact ``refs/heads/<x>`` or
``refs/tags/<x>`` names, commits must be full SHAs, and ``--end-of-options`` /
``--`` close every option list.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import posixpath
import re
import shlex
import shutil
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass

from . import diffs, local
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


# Configuration every git Walle runs is given on its "command line" (through
# GIT_CONFIG_COUNT), which wins over any repository config: no hooks (fetch
# runs reference-transaction hooks), no attribute files, no fsmonitor, no
# automatic gc or maintenance spawning more git, no local-file protocol.
_FORCED_CONFIG = (
    ("core.hooksPath", "/dev/null"),
    ("core.attributesFile", "/dev/null"),
    ("core.fsmonitor", "false"),
    ("core.askPass", ""),
    ("credential.helper", ""),
    ("gc.auto", "0"),
    ("maintenance.auto", "false"),
    ("protocol.file.allow", "never"),
    ("fetch.recurseSubmodules", "false"),
    ("transfer.credentialsInUrl", "die"),
)


def git_env(files: KeyFiles | None, *, allow_protocols: str = "ssh:https") -> dict[str, str]:
    """Environment for every git Walle runs: only our key and pinned host key,
    no prompts, and no configuration Walle did not write.

    System and global config are off (``GIT_CONFIG_GLOBAL=/dev/null`` and a
    private HOME), replace objects and grafts are ignored, so the tree of a SHA
    is the tree of that SHA, whatever refs or files a repository carries.
    """
    env = local.tool_env(
        {
            "GIT_ALLOW_PROTOCOL": allow_protocols,
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": "/dev/null",
            "GIT_ATTR_NOSYSTEM": "1",
            "GIT_NO_REPLACE_OBJECTS": "1",
            "GIT_GRAFT_FILE": "/dev/null",
            "GIT_CONFIG_COUNT": str(len(_FORCED_CONFIG)),
        }
    )
    for index, (key, value) in enumerate(_FORCED_CONFIG):
        env[f"GIT_CONFIG_KEY_{index}"] = key
        env[f"GIT_CONFIG_VALUE_{index}"] = value
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


# Only branches and tags are fetched: never refs/replace/* (which would make
# git show other content under an approved SHA), refs/notes/*, or a host's
# refs/pull/*. Passed on every fetch, never stored in the mirror's config.
FETCH_REFSPECS = ("+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*")
# The whole config of a mirror, rewritten before every fetch: whatever else a
# mirror's config held (a filter, a hooks path, an old "origin") is dropped.
_MIRROR_CONFIG = "[core]\n\trepositoryformatversion = 0\n\tbare = true\n"
# Files in a git dir that change what git does or shows, never written by Walle.
_FOREIGN_GIT_FILES = (
    "hooks", "info/attributes", "info/grafts", "objects/info/alternates", "objects/info/http-alternates",
    "commondir", "shallow",
)


def mirror(repo_url: str, host_key: str, key: Secret, workspace: str, log: GitLog, *, timeout: int = 600) -> str:
    """Create (first time) or fetch-with-prune the project's mirror; return its path.

    A lock file serialises runs sharing a workspace so two fetches never race.
    The first fetch goes to a temporary name and is renamed when complete, so an
    interrupted clone never leaves a half mirror behind.
    """
    validate_repo_url(repo_url)
    os.makedirs(workspace, mode=0o700, exist_ok=True)
    path = mirror_path(workspace)
    with _workspace_lock(workspace), repo_credentials(repo_url, host_key, key) as files:
        env = git_env(files)
        if os.path.isdir(path):
            _sanitize_git_dir(path)
            _fetch(path, repo_url, env, timeout, log)
            _drop_foreign_refs(path, env)
            return path
        partial = path + ".partial"
        shutil.rmtree(partial, ignore_errors=True)
        _run_git(["git", "init", "--quiet", "--bare", "--template=", partial], env, timeout, log)
        _sanitize_git_dir(partial)
        _fetch(partial, repo_url, env, timeout, log)
        os.rename(partial, path)
    return path


def _fetch(path: str, repo_url: str, env: dict[str, str], timeout: int, log: GitLog) -> None:
    argv = ["git", "--git-dir", path, "fetch", "--prune", "--no-tags", "--end-of-options", repo_url]
    _run_git([*argv, *FETCH_REFSPECS], env, timeout, log)


def _sanitize_git_dir(path: str) -> None:
    """Give the mirror Walle's own config and remove hooks, attributes, grafts."""
    for name in _FOREIGN_GIT_FILES:
        target = os.path.join(path, name)
        if os.path.isdir(target) and not os.path.islink(target):
            shutil.rmtree(target)
        elif os.path.lexists(target):
            os.unlink(target)
    config = os.path.join(path, "config")
    if os.path.lexists(config):
        os.unlink(config)  # a symlink is replaced, never written through
    fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(_MIRROR_CONFIG)


def _drop_foreign_refs(path: str, env: dict[str, str]) -> None:
    """Delete refs that are neither branches nor tags (left by an older mirror)."""
    listed = subprocess.run(
        ["git", "--git-dir", path, "for-each-ref", "--format=%(refname)"],
        capture_output=True, text=True, env=env, timeout=_PARSE_TIMEOUT, stdin=subprocess.DEVNULL,
    )
    if listed.returncode != 0:
        raise GitError(f"cannot list the mirror's refs: {listed.stderr.strip()[:300]}")
    foreign = [ref for ref in listed.stdout.splitlines() if not ref.startswith(("refs/heads/", "refs/tags/"))]
    if foreign:
        deleted = subprocess.run(
            ["git", "--git-dir", path, "update-ref", "--stdin"],
            input="".join(f"delete {ref}\n" for ref in foreign), text=True, env=env,
            timeout=_PARSE_TIMEOUT, capture_output=True,
        )
        if deleted.returncode != 0:
            raise GitError(f"cannot remove foreign refs from the mirror: {deleted.stderr.strip()[:300]}")


def _run_git(argv: list[str], env: dict[str, str], timeout: int, log: GitLog) -> None:
    log(Stream.INFO, "$ " + shlex.join(argv))
    status = local.run(argv, env=env, timeout=timeout, on_line=log)
    if status != 0:
        verb = argv[3] if argv[1] in ("-C", "--git-dir") else argv[1]
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


def export(workspace: str, sha: str, dest: str, *, timeout: int = 600) -> str:
    """Write exactly commit ``sha``'s tree into the new directory ``dest`` (no .git);
    return the tree id that was written and verified.

    Walle writes the files itself from ``git ls-tree`` and ``git cat-file``
    rather than through ``git archive``: no attribute of the repository
    (``export-ignore``, ``export-subst``, filters, eol) changes what is written,
    a symlink is written as a link and never followed, and every file gets a
    modification time derived from its blob id, so rsync's size-and-time check
    sees a changed file as changed. Afterwards the directory is hashed the way
    git hashes a tree and compared with the tree named in the commit object
    itself, whose own hash must be ``sha``: what is deployed is that commit.
    """
    validate_commit(sha)
    tree = commit_tree(workspace, sha)
    entries = _tree_entries(workspace, tree)
    os.makedirs(dest, mode=0o755)  # fails if it exists: always a fresh directory
    deadline = time.monotonic() + timeout
    _write_entries(workspace, dest, entries, deadline)
    written = tree_id(dest, {e.path: e.oid for e in entries if e.mode == _GITLINK})
    if written != tree:
        raise GitError(f"the exported files do not match commit {sha} (tree {written} instead of {tree})")
    return tree


EXPORT_CACHE_DIR = "export-cache"  # in the workspace: the last exported tree, never handed to hooks
_CACHE_TREE = "tree"  # the cache's files
_CACHE_ID = "tree-id"  # the tree id the cache holds; written only once a copy of it verified


def export_incremental(workspace: str, sha: str, dest: str, *, timeout: int = 600) -> tuple[str, int]:
    """Like :func:`export`, at the cost of what changed since the previous export
    of this workspace; return (tree id, number of entries written).

    The workspace keeps a pristine copy of the last exported tree. It is brought
    to ``sha``'s tree by writing the blobs that differ and deleting what is
    gone, then copied (never linked: hooks change the copy, not the cache) to
    the fresh directory ``dest``, which is verified against the commit's tree
    exactly as :func:`export` verifies. A cache that fails that check is
    rebuilt from scratch once.
    """
    def copy(cache: str, gitlinks: dict[str, str], deadline: float) -> str:
        shutil.rmtree(dest, ignore_errors=True)  # a copy of a cache that failed the check
        return _copy_verified(cache, dest, gitlinks, deadline)

    with export_cache_lock(workspace):
        return _refresh_cache(workspace, sha, timeout, copy)


def export_in_place(workspace: str, sha: str, *, timeout: int = 600) -> tuple[str, int, str]:
    """Bring the workspace's export cache to ``sha``'s tree and verify it there;
    return (tree id, entries written, the directory). For runs without build
    hooks, which copy straight from it: the caller holds
    :func:`export_cache_lock` from before this call until it has read the files."""
    def verify(cache: str, gitlinks: dict[str, str], deadline: float) -> str:
        return tree_id(os.path.join(cache, _CACHE_TREE), gitlinks)

    tree, written = _refresh_cache(workspace, sha, timeout, verify)
    return tree, written, os.path.join(workspace, EXPORT_CACHE_DIR, _CACHE_TREE)


@contextmanager
def export_cache_lock(workspace: str) -> Iterator[None]:
    """Held while the export cache is changed or read (workspaces are per
    project and runs of a project never overlap; this makes sure of it)."""
    os.makedirs(workspace, mode=0o700, exist_ok=True)
    fd = os.open(os.path.join(workspace, ".walle-export.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _refresh_cache(
    workspace: str, sha: str, timeout: int, check: Callable[[str, dict[str, str], float], str]
) -> tuple[str, int]:
    """Update the cache to ``sha``'s tree; ``check`` returns the tree id of what
    will be deployed (the cache itself or a copy). A mismatch rebuilds the cache once."""
    validate_commit(sha)
    tree = commit_tree(workspace, sha)
    deadline = time.monotonic() + timeout
    cache = os.path.join(workspace, EXPORT_CACHE_DIR)
    entries = _tree_entries(workspace, tree)
    gitlinks = {e.path: e.oid for e in entries if e.mode == _GITLINK}
    written = _update_cache(workspace, cache, entries, deadline)
    if check(cache, gitlinks, deadline) != tree:
        written = _update_cache(workspace, cache, entries, deadline, fresh=True)
        found = check(cache, gitlinks, deadline)
        if found != tree:
            raise GitError(f"the exported files do not match commit {sha} (tree {found} instead of {tree})")
    _write_cache_id(cache, tree)
    return tree, written


def _update_cache(workspace: str, cache: str, entries: list[_Entry], deadline: float, *, fresh: bool = False) -> int:
    """Bring the cache's files to ``entries``; return how many entries were written."""
    files = os.path.join(cache, _CACHE_TREE)
    old_tree = "" if fresh else _read_cache_id(cache)
    os.makedirs(cache, mode=0o700, exist_ok=True)
    if os.path.lexists(os.path.join(cache, _CACHE_ID)):
        os.unlink(os.path.join(cache, _CACHE_ID))  # an interrupted update must never look complete
    if not old_tree or not os.path.isdir(files):
        shutil.rmtree(files, ignore_errors=True)
        os.mkdir(files, 0o755)
        _write_entries(workspace, files, entries, deadline)
        return len(entries)
    old = {e.path: e for e in _tree_entries(workspace, old_tree)}
    new = {e.path: e for e in entries}
    gone = [e for path, e in old.items() if new.get(path) != e]
    for entry in sorted(gone, key=lambda e: e.path.count("/"), reverse=True):
        _remove_path(os.path.join(files, entry.path))
    needed = {""} | {posixpath.dirname(e.path) for e in entries} | {e.path for e in entries if e.mode == _GITLINK}
    needed |= {parent for path in list(needed) for parent in _ancestors(path)}
    existing = _prune_dirs(files, needed)
    changed = [e for path, e in new.items() if old.get(path) != e]
    made = set(existing)
    blobs = [e for e in changed if e.mode != _GITLINK]
    with closing(_cat_blobs(workspace, [e.oid for e in blobs], deadline)) as contents:
        for entry in changed:
            if entry.mode == _GITLINK and entry.path in made:
                continue  # still an empty directory, whatever commit it names
            _write_entry(files, entry, made, contents)
    for directory in made - {""}:
        os.utime(os.path.join(files, directory), (_MTIME_BASE, _MTIME_BASE), follow_symlinks=False)
    return len(changed)


def _ancestors(path: str) -> Iterator[str]:
    while path:
        path = posixpath.dirname(path)
        yield path


def _remove_path(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def _prune_dirs(files: str, needed: set[str]) -> set[str]:
    """Remove directories no entry needs any more; return the relative dirs kept."""
    kept = {""}
    for parent, dirs, _ in os.walk(files):
        rel_parent = os.path.relpath(parent, files)
        rel_parent = "" if rel_parent == "." else rel_parent
        for name in list(dirs):
            rel = posixpath.join(rel_parent, name) if rel_parent else name
            if rel in needed:
                kept.add(rel)
            else:
                shutil.rmtree(os.path.join(parent, name))
                dirs.remove(name)
    return kept


def _copy_verified(cache: str, dest: str, gitlinks: dict[str, str], deadline: float) -> str:
    """Copy the cache's files to the new directory ``dest``; return the tree id found there."""
    if os.path.lexists(dest):
        raise GitError(f"{dest} exists already")
    copied = subprocess.run(
        ["cp", "--archive", "--no-target-directory", "--", os.path.join(cache, _CACHE_TREE), dest],
        capture_output=True, text=True, env=local.safe_env(), timeout=max(1.0, deadline - time.monotonic()),
        stdin=subprocess.DEVNULL,
    )
    if copied.returncode != 0:
        raise GitError(f"copying the export to the build dir failed: {copied.stderr.strip()[:300]}")
    return tree_id(dest, gitlinks)


def _read_cache_id(cache: str) -> str:
    try:
        with open(os.path.join(cache, _CACHE_ID), encoding="ascii") as handle:
            text = handle.read().strip()
    except (OSError, UnicodeDecodeError):
        return ""
    return text if SHA_RE.fullmatch(text) else ""


def _write_cache_id(cache: str, tree: str) -> None:
    partial = os.path.join(cache, _CACHE_ID + ".partial")
    with open(partial, "w", encoding="ascii") as handle:
        handle.write(tree + "\n")
    os.replace(partial, os.path.join(cache, _CACHE_ID))


@dataclass(frozen=True)
class _Entry:
    mode: str
    oid: str
    path: str


_GITLINK = "160000"
_SYMLINK = "120000"
_MODES = {"100644": 0o644, "100755": 0o755, _SYMLINK: 0, _GITLINK: 0}
# Release files get a time from their blob id: same content, same time; a
# change of content (at any size) almost surely a different time. The range
# stays within 2001-2033, which every filesystem and rsync can store.
_MTIME_BASE = 1_000_000_000
_MTIME_SPAN = 1 << 30


def blob_mtime(oid: str) -> int:
    """The modification time an exported file with blob ``oid`` gets."""
    return _MTIME_BASE + int(oid[:8], 16) % _MTIME_SPAN


def commit_tree(workspace: str, sha: str) -> str:
    """The tree id in commit ``sha``'s own object, after checking that the
    object's content hashes to ``sha`` (so no replace ref or graft is in play)."""
    result = subprocess.run(
        ["git", "--git-dir", mirror_path(workspace), "cat-file", "commit", sha],
        capture_output=True, env=git_env(None, allow_protocols=""), timeout=_PARSE_TIMEOUT,
        stdin=subprocess.DEVNULL,
    )
    if result.returncode != 0:
        raise GitError(f"commit {sha} is not in the repository")
    body = result.stdout
    if hashlib.sha1(b"commit %d\0" % len(body) + body).hexdigest() != sha:  # noqa: S324 - git's object id
        raise GitError(f"the repository's object for commit {sha} does not match its id")
    first = body.split(b"\n", 1)[0].decode("ascii", "replace")
    if not first.startswith("tree ") or not SHA_RE.fullmatch(first[5:]):
        raise GitError(f"commit {sha} has no tree line")
    return first[5:]


def _tree_entries(workspace: str, tree: str) -> list[_Entry]:
    out = subprocess.run(
        ["git", "--git-dir", mirror_path(workspace), "ls-tree", "-r", "-z", "--full-tree", tree],
        capture_output=True, env=git_env(None, allow_protocols=""), timeout=_PARSE_TIMEOUT,
        stdin=subprocess.DEVNULL,
    )
    if out.returncode != 0:
        raise GitError(f"cannot list tree {tree}: {out.stderr.decode(errors='replace').strip()[:300]}")
    entries = []
    for record in out.stdout.split(b"\0"):
        if not record:
            continue
        meta, _, raw_path = record.partition(b"\t")
        mode, _kind, oid = meta.decode("ascii").split(" ")
        path = os.fsdecode(raw_path)
        if mode not in _MODES:
            raise GitError(f"unsupported file mode {mode} for {path!r}")
        _check_tree_path(path)
        entries.append(_Entry(mode, oid, path))
    return entries


def _check_tree_path(path: str) -> None:
    """A repository could hold a crafted tree; only plain relative names pass."""
    parts = path.split("/")
    if path.startswith("/") or any(part in ("", ".", "..", ".git") for part in parts):
        raise GitError(f"the repository contains an unsafe path {path!r}")


def _write_entries(workspace: str, dest: str, entries: list[_Entry], deadline: float) -> None:
    """Write every entry below ``dest``; directories are only ever ones made here."""
    made_dirs = {""}
    blobs = [e for e in entries if e.mode != _GITLINK]
    with closing(_cat_blobs(workspace, [e.oid for e in blobs], deadline)) as contents:
        for entry in entries:
            _write_entry(dest, entry, made_dirs, contents)
    for directory in made_dirs - {""}:
        os.utime(os.path.join(dest, directory), (_MTIME_BASE, _MTIME_BASE), follow_symlinks=False)


def _write_entry(dest: str, entry: _Entry, made_dirs: set[str], contents: Iterator[bytes]) -> None:
    parent = posixpath.dirname(entry.path)
    _make_parents(dest, parent, made_dirs)
    target = os.path.join(dest, entry.path)
    if entry.mode == _GITLINK:  # a submodule: an empty directory, like git archive
        os.mkdir(target, 0o755)
        made_dirs.add(entry.path)
        return
    data = next(contents)
    if entry.mode == _SYMLINK:
        os.symlink(os.fsdecode(data), target)
    else:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, _MODES[entry.mode])
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(target, _MODES[entry.mode])  # not narrowed by the umask
    mtime = blob_mtime(entry.oid)
    os.utime(target, (mtime, mtime), follow_symlinks=False)


def _make_parents(dest: str, parent: str, made_dirs: set[str]) -> None:
    """Create ``parent`` component by component; never pass through anything
    this export did not create as a directory (a crafted tree could name a
    symlink and then a path below it)."""
    if parent in made_dirs:
        return
    _make_parents(dest, posixpath.dirname(parent), made_dirs)
    os.mkdir(os.path.join(dest, parent), 0o755)  # fails on an existing link or file
    made_dirs.add(parent)


def _cat_blobs(workspace: str, oids: list[str], deadline: float) -> Iterator[bytes]:
    """Contents of ``oids`` in order, streamed from one ``git cat-file --batch``."""
    proc = subprocess.Popen(
        ["git", "--git-dir", mirror_path(workspace), "cat-file", "--batch"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        env=git_env(None, allow_protocols=""),
    )
    assert proc.stdin is not None and proc.stdout is not None
    timer = threading.Timer(max(0.0, deadline - time.monotonic()), proc.kill)
    timer.start()

    def feed() -> None:
        try:
            for oid in oids:
                proc.stdin.write(oid.encode() + b"\n")  # type: ignore[union-attr]
            proc.stdin.close()  # type: ignore[union-attr]
        except (BrokenPipeError, ValueError):
            pass

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    try:
        for oid in oids:
            header = proc.stdout.readline().split()
            if len(header) != 3 or header[0].decode() != oid or header[1] != b"blob":
                raise GitError(f"cannot read blob {oid} from the repository")
            data = proc.stdout.read(int(header[2]))
            proc.stdout.read(1)  # the newline after each object
            yield data
    finally:
        timer.cancel()
        proc.kill()
        proc.wait()
        writer.join(timeout=5)


def tree_id(directory: str, gitlinks: dict[str, str] | None = None, _prefix: str = "") -> str:
    """The git tree id of ``directory`` as it is on disk (files, exec bits,
    symlinks; ``gitlinks`` maps submodule paths to their commit ids)."""
    gitlinks = gitlinks or {}
    entries: list[tuple[bytes, bytes, bytes]] = []  # (sort key, mode, raw id)
    with os.scandir(directory) as scan:
        for item in scan:
            rel = f"{_prefix}{item.name}"
            name = os.fsencode(item.name)
            if item.is_symlink():
                oid = _object_id(b"blob", os.fsencode(os.readlink(item.path)))
                entries.append((name, b"120000", oid))
            elif item.is_dir() and rel in gitlinks:
                entries.append((name, b"160000", bytes.fromhex(gitlinks[rel])))
            elif item.is_dir():
                sub = tree_id(item.path, gitlinks, rel + "/")
                entries.append((name + b"/", b"40000", bytes.fromhex(sub)))
            else:
                mode = b"100755" if os.stat(item.path).st_mode & 0o100 else b"100644"
                with open(item.path, "rb") as handle:
                    entries.append((name, mode, _object_id(b"blob", handle.read())))
    body = b"".join(
        mode + b" " + key.rstrip(b"/") + b"\0" + oid for key, mode, oid in sorted(entries, key=lambda e: e[0])
    )
    return _object_id(b"tree", body).hex()


def _object_id(kind: bytes, data: bytes) -> bytes:
    return hashlib.sha1(kind + b" %d\0" % len(data) + data).digest()  # noqa: S324 - git's object id


def file_diffs(workspace: str, from_sha: str, to_sha: str) -> list[diffs.FileDiff]:
    """Each file changed between two commits with its content diff, capped
    (engine/diffs.py); binary files by name only. No textconv, external diff
    or attribute of the repository changes what a reviewer is shown."""
    validate_commit(from_sha)
    validate_commit(to_sha)
    plain = ("--no-color", "--no-ext-diff", "--no-textconv", "--no-renames")
    numstat = _git(workspace, "diff", *plain, "--numstat", "-z", from_sha, to_sha, "--").stdout
    files = diffs.parse_numstat(numstat)
    shown = diffs.to_show(files)
    patch = ""
    if shown:
        # :(literal) so a file named like a pathspec pattern matches only itself.
        paths = [f":(literal){diff.path}" for diff in shown]
        patch = _git(workspace, "diff", *plain, "--unified=3", from_sha, to_sha, "--", *paths).stdout
    return diffs.attach(files, shown, diffs.split_patch(patch))
