"""Fetching a project's mirror happens on the worker, and only there.

The web process never decrypts a deploy key nor talks to the git server: it
queues :func:`fetch_repository` (a django-q2 task), reads the mirror the worker
keeps in the project's workspace, and may wait a bounded time for a fetch it
needs (a new ticket must resolve against the server's current tip). Every
fetch is recorded in :class:`~releases.models.RepositoryFetch`.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext
from django_q.tasks import async_task

from engine import git
from engine.masking import MASK, secret_fragments
from engine.plan import Secret
from projects.keys import key_for
from projects.models import Project
from projects.validators import workspace_problem

from .models import RepositoryFetch

logger = logging.getLogger(__name__)

FETCH_TASK = "releases.fetching.fetch_repository"
FETCH_TIMEOUT = 120  # seconds git may take for one fetch on the worker
# Anyone who can see a project may ask for a refresh: not again while one is
# queued or running, nor within this long of the last request.
REFRESH_INTERVAL = timedelta(seconds=30)
# A fetch asked for this long ago that never finished was lost (worker killed,
# broker wiped); it no longer holds back the next request.
LOST_AFTER = timedelta(minutes=10)
POLL_EVERY = 0.25  # seconds between looks at a task's result while waiting

Outcome = RepositoryFetch.Outcome


@dataclass(frozen=True)
class FetchResult:
    """What one fetch came to; ``error`` is safe to show."""

    outcome: str
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome == Outcome.OK


@dataclass(frozen=True)
class FetchStatus:
    """How fresh a project's mirror is, for the pages."""

    fetched_at: datetime | None  # the last fetch that worked
    in_progress: bool  # one is queued or running
    outcome: str  # of the last fetch that ended ("" if none did)
    error: str  # its error, if it failed


def settings_problem(project: Project) -> str:
    """Why the project's repository settings cannot be fetched with, or "".
    Pure checks, no key and no network: the web process asks before queueing."""
    try:
        ssh_host = git.repo_ssh_host(project.repo_url)
    except ValueError as exc:
        return _config_message(project, str(exc))
    if ssh_host is not None and not project.repo_host_key.strip():
        return _config_message(project, gettext("the git server's host key is not pinned; run the config check to pin it"))
    if problem := workspace_problem(project.effective_workspace):
        return gettext("The workspace of project %(project)s is not usable: %(problem)s") % {
            "project": project.name, "problem": problem,
        }
    return ""


def _config_message(project: Project, detail: str) -> str:
    return gettext(
        "The repository settings of project %(project)s are not valid: %(detail)s. "
        "This is a configuration error, not an outage: a Maintainer must correct the project's "
        "repository URL (Projects & config › the project › Repository URL)."
    ) % {"project": project.name, "detail": detail}


# --- The worker side ------------------------------------------------------------

def fetch_repository(project_id: int) -> dict[str, str]:
    """django-q2 task: fetch (or first clone) one project's mirror and record
    how it went. The deploy key is decrypted here, in the worker, and nowhere
    in the web process. Never raises for a git or settings problem."""
    project = Project.objects.filter(pk=project_id).first()
    if project is None:
        return {"outcome": Outcome.ERROR, "error": gettext("Project %(id)s no longer exists.") % {"id": project_id}}
    record, _ = RepositoryFetch.objects.get_or_create(project=project)
    RepositoryFetch.objects.filter(pk=record.pk).update(started_at=timezone.now())
    try:
        fetched = _fetch(project)
    except Exception:  # a bug must still end the fetch, or callers wait for nothing
        logger.exception("fetching project %s failed", project.pk)
        fetched = FetchResult(Outcome.ERROR, gettext("The fetch failed with an internal error; see the worker's log."))
    now = timezone.now()
    RepositoryFetch.objects.filter(pk=record.pk).update(
        finished_at=now, outcome=fetched.outcome, error=fetched.error,
        **({"fetched_at": now} if fetched.ok else {}),
    )
    return {"outcome": fetched.outcome, "error": fetched.error}


def _fetch(project: Project) -> FetchResult:
    problem = settings_problem(project)
    if problem:
        return FetchResult(Outcome.CONFIG, problem)
    try:
        key = Secret(key_for(project).private_key())
    except Exception:  # a wrong WALLE_KEY_ENCRYPTION_KEY; the detail goes to the worker's log only
        logger.exception("cannot decrypt the deploy key of project %s", project.pk)
        return FetchResult(Outcome.ERROR, gettext("The deploy key cannot be decrypted; see the worker's log."))
    tail: deque[str] = deque(maxlen=3)
    try:
        git.mirror(
            project.repo_url, project.repo_host_key, key, project.effective_workspace,
            lambda stream, text: tail.append(text), timeout=FETCH_TIMEOUT,
        )
    except ValueError as exc:
        return FetchResult(Outcome.CONFIG, _config_message(project, str(exc)))
    except (git.GitError, OSError) as exc:
        text = (gettext("Cannot fetch the repository: %(error)s.") % {"error": exc} + " " + "; ".join(tail)).strip()
        for fragment in secret_fragments(key):
            text = text.replace(fragment, MASK)
        return FetchResult(Outcome.UNREACHABLE, text)
    return FetchResult(Outcome.OK)


# --- The web side -----------------------------------------------------------------

def _in_flight(now: datetime) -> Q:
    """A fetch was asked for (recently) and has not finished since."""
    return Q(requested_at__gte=now - LOST_AFTER) & (Q(finished_at__isnull=True) | Q(finished_at__lt=F("requested_at")))


def fetch_and_wait(project: Project, timeout: float) -> FetchResult | None:
    """Have the worker fetch ``project`` and wait for it, at most ``timeout``
    seconds (None if it did not finish). A fetch already queued or running is
    waited for instead of queueing another, so many users creating tickets at
    once cost the worker one fetch, not one each."""
    record, _ = RepositoryFetch.objects.get_or_create(project=project)
    now = timezone.now()
    # Compare-and-set: of two callers at once, only one queues the fetch.
    if RepositoryFetch.objects.filter(pk=record.pk).exclude(_in_flight(now)).update(requested_at=now):
        async_task(FETCH_TASK, project.pk, group="walle-fetch")
    asked = RepositoryFetch.objects.filter(pk=record.pk).values_list("requested_at", flat=True).get()
    deadline = time.monotonic() + timeout
    while True:
        done = RepositoryFetch.objects.filter(pk=record.pk, finished_at__gte=asked).values("outcome", "error").first()
        if done is not None:
            return FetchResult(done["outcome"] or Outcome.ERROR, done["error"])
        if time.monotonic() >= deadline:
            return None
        time.sleep(POLL_EVERY)


def request_refresh(project: Project) -> bool:
    """Queue a fetch unless one is queued or running, or one was asked for
    within REFRESH_INTERVAL. Returns whether one was queued."""
    record, _ = RepositoryFetch.objects.get_or_create(project=project)
    now = timezone.now()
    done = Q(finished_at__gte=F("requested_at")) | Q(requested_at__lt=now - LOST_AFTER)
    quiet = Q(requested_at__isnull=True) | (Q(requested_at__lt=now - REFRESH_INTERVAL) & done)
    # Compare-and-set: of two requests at once, only one queues a fetch.
    if not RepositoryFetch.objects.filter(quiet, pk=record.pk).update(requested_at=now):
        return False
    async_task(FETCH_TASK, project.pk, group="walle-fetch")
    return True


def status(project: Project) -> FetchStatus:
    record = RepositoryFetch.objects.filter(project=project).first()
    if record is None:
        return FetchStatus(None, False, "", "")
    asked = record.requested_at
    in_progress = bool(
        asked and asked >= timezone.now() - LOST_AFTER and (record.finished_at is None or record.finished_at < asked)
    )
    error = record.error if record.outcome and record.outcome != Outcome.OK else ""
    return FetchStatus(record.fetched_at, in_progress, record.outcome, error)
