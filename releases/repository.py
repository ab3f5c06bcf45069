"""What the pages and the API ask of a project's repository: refs, commits,
and what a ticket would change. Reads the project's mirror on the deploy host
(refreshing it on request) through ``releases.deploy.git``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from projects.keys import key_for
from projects.models import Project

from .deploy import git
from .deploy.plan import RefKind, Secret
from .models import Release


class RepositoryError(Exception):
    """The repository could not be read; the message is safe to show."""


class FetchError(RepositoryError):
    """The git server could not be reached: not the user's input at fault."""


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


def refresh(project: Project) -> None:
    """Fetch the mirror (clone it the first time)."""
    lines: list[str] = []
    try:
        git.mirror(
            project.repo_url, project.repo_host_key, Secret(key_for(project).private_key()),
            _workspace(project), lambda stream, text: lines.append(text), timeout=120,
        )
    except (git.GitError, ValueError, OSError) as exc:
        detail = "; ".join(lines[-3:])
        raise FetchError(f"Cannot fetch the repository: {exc}. {detail}".strip()) from None


def _ensure_mirror(project: Project) -> None:
    if not os.path.isdir(git.mirror_path(_workspace(project))):
        refresh(project)


def refs(project: Project, *, fetch: bool = False) -> dict[str, list[str]]:
    """Branches and tags, as ``{"branches": [...], "tags": [...]}``."""
    refresh(project) if fetch else _ensure_mirror(project)
    try:
        return git.list_refs(_workspace(project))
    except git.GitError as exc:
        raise RepositoryError(str(exc)) from None


def commits(project: Project, ref: str, limit: int = 30) -> list[dict[str, str]]:
    _ensure_mirror(project)
    try:
        return git.recent_commits(_workspace(project), RefKind(project.repo_mode), ref, limit)
    except (git.GitError, ValueError) as exc:
        raise RepositoryError(str(exc)) from None


def resolve(project: Project, ref: str, commit: str = "") -> ResolvedRef:
    """Check a user's ref (and optional commit) against the repository.

    The ref must name an existing branch or tag exactly (per the project's
    mode); the commit must be a full SHA reachable from it. Raises
    RepositoryError with a message naming what is wrong.
    """
    _ensure_mirror(project)
    try:
        sha = git.resolve(_workspace(project), RefKind(project.repo_mode), ref, commit)
    except (git.GitError, ValueError) as exc:
        raise RepositoryError(str(exc)) from None
    return ResolvedRef(ref=ref, commit=sha)


def resolve_fresh(project: Project, ref: str, commit: str = "") -> ResolvedRef:
    """Resolve a user's ref, then commit, as a ticket will be made from them.

    The mirror may lag the git server. Without a commit, fetch first: "the
    tip" must be the server's tip, never a stale one. With a commit, a miss is
    retried once after a fetch (it may have just been pushed).

    Raises ResolveError naming the field at fault, or FetchError when the git
    server cannot be reached. The HTML form and the API both call this.
    """
    fetched = not commit
    if fetched:
        refresh(project)

    def attempt(field: str, *args: str) -> ResolvedRef:
        nonlocal fetched
        try:
            return resolve(project, *args)
        except FetchError:
            raise
        except RepositoryError as exc:
            if fetched:
                raise ResolveError(field, str(exc)) from None
        refresh(project)
        fetched = True
        return attempt(field, *args)

    resolved = attempt("ref", ref)
    return attempt("commit", ref, commit) if commit else resolved


def live_commit(project: Project) -> str:
    release = Release.objects.filter(project=project, is_live=True).order_by("-switched_at").first()
    return release.commit if release else ""


def preview(project: Project, commit: str) -> dict[str, list]:
    """Commits and changed files between what is live and ``commit``."""
    _ensure_mirror(project)
    live = live_commit(project)
    if not live:
        return {"live": "", "commits": [], "files": [], "first_deploy": True}
    try:
        result = git.compare(_workspace(project), live, commit)
    except (git.GitError, ValueError) as exc:
        raise RepositoryError(str(exc)) from None
    return {"live": live, **result, "first_deploy": False}
