"""What the pages and the API ask of a project's repository: refs, commits,
and what a ticket would change.

Everything here reads the project's mirror locally (``engine.git``;
no key, no network). Fetching is the worker's job (:mod:`releases.fetching`):
a refresh only queues one, and :func:`resolve_fresh` waits a bounded time for
the fetch it needs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from django.utils.translation import gettext

from engine import git
from engine.plan import RefKind
from projects.models import Project

from . import fetching
from .models import Release

# How long a new ticket waits for the worker's fetch; below the web server's
# request timeout (gunicorn --timeout 120 in bin/start).
FETCH_WAIT = 90


class RepositoryError(Exception):
    """The repository could not be read; the message is safe to show."""


class FetchError(RepositoryError):
    """The git server could not be reached: not the user's input at fault."""


class WorkerUnavailable(FetchError):
    """The worker did not fetch in time: it is not running, or busy."""


class ConfigurationError(RepositoryError):
    """The project's repository settings are invalid (e.g. a repository URL
    saved before validation got stricter): for a Maintainer to fix, not an outage."""


class NotFetched(RepositoryError):
    """The project's repository has never been fetched; the worker is at it."""


class ResolveError(RepositoryError):
    """The user's ref or commit is not in the repository; ``field`` says which
    (``"ref"`` or ``"commit"``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class ResolvedRef:
    ref: str
    commit: str


def _workspace(project: Project) -> str:
    return project.effective_workspace


def _check_settings(project: Project) -> None:
    problem = fetching.settings_problem(project)
    if problem:
        raise ConfigurationError(problem)


def fetch_status(project: Project) -> fetching.FetchStatus:
    """How old the cached lists are, and whether a fetch is on its way."""
    return fetching.status(project)


def request_refresh(project: Project) -> bool:
    """Ask the worker to fetch (rate-limited); True if a fetch was queued."""
    _check_settings(project)
    return fetching.request_refresh(project)


def fetch_now(project: Project) -> None:
    """Have the worker fetch now and wait for it (at most FETCH_WAIT seconds).
    Raises ConfigurationError, FetchError or WorkerUnavailable."""
    _check_settings(project)
    done = fetching.fetch_and_wait(project, FETCH_WAIT)
    if done is None:
        raise WorkerUnavailable(
            gettext("The background worker did not fetch the repository within %(seconds)s s: it is not running "
                    "(manage.py qcluster) or is busy with deploys. Nothing was changed; try again in a moment.")
            % {"seconds": FETCH_WAIT}
        )
    if done.outcome == fetching.Outcome.CONFIG:
        raise ConfigurationError(done.error)
    if not done.ok:
        raise FetchError(done.error)


def _mirror(project: Project, *, ask: bool = True) -> str:
    """The workspace of a mirror that exists; the first look at a project
    queues its first fetch (unless the caller fetches itself: ``ask=False``)."""
    workspace = _workspace(project)
    if not os.path.isdir(git.mirror_path(workspace)):
        if ask:
            request_refresh(project)
        if not os.path.isdir(git.mirror_path(workspace)):  # not already done (inline task runner)
            raise NotFetched(gettext("This repository has not been fetched yet."))
    return workspace


def refs(project: Project, *, fetch: bool = False) -> dict[str, list[str]]:
    """Branches and tags, as ``{"branches": [...], "tags": [...]}``, as of the
    last fetch; ``fetch`` asks the worker for a new one (not waited for)."""
    if fetch:
        request_refresh(project)
    try:
        return git.list_refs(_mirror(project))
    except git.GitError as exc:
        raise RepositoryError(str(exc)) from None


def commits(project: Project, ref: str, limit: int = 30) -> list[dict[str, str]]:
    try:
        return git.recent_commits(_mirror(project), RefKind(project.repo_mode), ref, limit)
    except (git.GitError, ValueError) as exc:
        raise RepositoryError(str(exc)) from None


def resolve(project: Project, ref: str, commit: str = "", *, _ask: bool = True) -> ResolvedRef:
    """Check a user's ref (and optional commit) against the mirror.

    The ref must name an existing branch or tag exactly (per the project's
    mode); the commit must be a full SHA reachable from it. Raises
    RepositoryError with a message naming what is wrong.
    """
    try:
        sha = git.resolve(_mirror(project, ask=_ask), RefKind(project.repo_mode), ref, commit)
    except (git.GitError, ValueError) as exc:
        raise RepositoryError(str(exc)) from None
    return ResolvedRef(ref=ref, commit=sha)


def resolve_fresh(project: Project, ref: str, commit: str = "") -> ResolvedRef:
    """Resolve a user's ref, then commit, as a ticket will be made from them.

    The mirror may lag the git server. Without a commit, fetch first: "the
    tip" must be the server's tip, never a stale one. With a commit, a miss is
    retried once after a fetch (it may have just been pushed). Fetches run on
    the worker; this waits for them (see :func:`fetch_now`).

    Raises ResolveError naming the field at fault, ConfigurationError for bad
    project settings, FetchError when the git server cannot be reached (or
    WorkerUnavailable when the worker does not answer). The HTML form and the
    API both call this.
    """
    fetched = not commit
    if fetched:
        fetch_now(project)

    def attempt(field: str, *args: str) -> ResolvedRef:
        nonlocal fetched
        try:
            return resolve(project, *args, _ask=False)
        except (FetchError, ConfigurationError):
            raise
        except RepositoryError as exc:
            if fetched:
                raise ResolveError(field, str(exc)) from None
        fetch_now(project)
        fetched = True
        return attempt(field, *args)

    resolved = attempt("ref", ref)
    return attempt("commit", ref, commit) if commit else resolved


def live_commit(project: Project) -> str:
    release = Release.objects.filter(project=project, is_live=True).order_by("-switched_at").first()
    return release.commit if release else ""


def file_diffs(project: Project, from_sha: str, to_sha: str) -> list:
    """Content diffs between two commits, as of the worker's last fetch."""
    try:
        return git.file_diffs(_mirror(project), from_sha, to_sha)
    except (git.GitError, ValueError) as exc:
        raise RepositoryError(str(exc)) from None


def preview(project: Project, commit: str) -> dict[str, list]:
    """Commits and changed files between what is live and ``commit``."""
    workspace = _mirror(project)
    live = live_commit(project)
    if not live:
        return {"live": "", "commits": [], "files": [], "first_deploy": True}
    try:
        result = git.compare(workspace, live, commit)
        status_of = {path: status for status, path in result["files"]}
        # (status, FileDiff) per file: what a reviewer reads, content capped.
        changes = [(status_of.get(d.path, "M"), d) for d in git.file_diffs(workspace, live, commit)]
    except (git.GitError, ValueError) as exc:
        raise RepositoryError(str(exc)) from None
    return {"live": live, **result, "changes": changes, "first_deploy": False}
