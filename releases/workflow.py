"""Every status change of a ticket or run happens here, and only here.

Each action runs in a transaction, checks the permission policy first, moves
the status with a compare-and-set (so a double click acts once), writes a
TicketEvent, and queues background work only after the transaction commits.
Admin actions, HTML views, the API and the worker all call these functions.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import F, Max
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, gettext_noop

from accounts.permissions import Action, can_override_window, require
from engine.plan import Stage, Stream
from projects import windows
from projects.models import Host, Project
from walleproj.i18n import stored

from . import queries
from .models import Approval, DeployRun, ProjectLock, RunHost, Ticket, TicketAction, TicketEvent
from .queries import kept_releases, switched_hosts
from .runlog import append_line

S = Ticket.Status
A = TicketAction
logger = logging.getLogger(__name__)

# (action, from status) -> to status. The worker's own moves are listed too so
# the whole life of a ticket reads from one table.
TRANSITIONS: dict[tuple[str, str], str] = {
    (A.APPROVE, S.PENDING): S.APPROVED,
    # An approval that leaves the environment's N not yet reached.
    (A.APPROVE_PARTIAL, S.PENDING): S.PENDING,
    (A.REJECT, S.PENDING): S.REJECTED,
    (A.RESUBMIT, S.REJECTED): S.PENDING,
    (A.RESUBMIT_APPROVED, S.REJECTED): S.APPROVED,  # where deploys need no approval
    (A.REOPEN, S.APPROVED): S.PENDING,  # edited after approval
    (A.CANCEL, S.PENDING): S.CANCELLED,
    (A.CANCEL, S.APPROVED): S.CANCELLED,
    (A.CANCEL, S.REJECTED): S.CANCELLED,
    (A.CANCEL, S.QUEUED): S.CANCELLED,
    (A.DEPLOY, S.APPROVED): S.QUEUED,
    (A.DEPLOY, S.FAILED): S.QUEUED,
    (A.START, S.QUEUED): S.DEPLOYING,
    (A.SUCCEED, S.DEPLOYING): S.SUCCEEDED,
    (A.FAIL, S.DEPLOYING): S.FAILED,
    (A.FAIL, S.QUEUED): S.FAILED,
    # A rollout between batches: the worker waits for a person's promote; no
    # promote within WALLE_PROMOTE_TIMEOUT resumes the run, which then fails
    # and switches its hosts back.
    (A.WAIT, S.DEPLOYING): S.WAITING,
    (A.PROMOTE, S.WAITING): S.DEPLOYING,
    (A.RESUME, S.WAITING): S.DEPLOYING,
    (A.FAIL, S.WAITING): S.FAILED,
    # Cancelled while it waits (cancel): the worker sees it at its next poll,
    # stops the rollout and switches back the hosts this run switched. The
    # ticket ends cancelled, or failed if a host could not be switched back
    # (it still serves the new release: that needs a retry or a rollback).
    (A.CANCEL, S.WAITING): S.CANCELLING,
    (A.SWITCH_BACK, S.CANCELLING): S.CANCELLED,
    (A.FAIL, S.CANCELLING): S.FAILED,
    # A new run of a failed ticket that reuses its release (docs/rollouts.md).
    (A.RETRY, S.FAILED): S.QUEUED,
    # An edit that needs no new approval keeps the status (and still goes
    # through the mover: compare-and-set, version, event).
    (A.EDIT, S.PENDING): S.PENDING,
    (A.EDIT, S.APPROVED): S.APPROVED,
}

EDITABLE = (S.PENDING, S.APPROVED, S.REJECTED)

# A ticket's schedule, cleared (a deploy, a cancel, an unschedule, a refusal).
UNSCHEDULED = {"scheduled_at": None, "scheduled_by": None, "scheduled_version": None}

R = DeployRun.Status

# The life of one run, (action, from status) -> to status; moved only by _move_run.
# Its moves are the ticket's (TicketAction) but one, which no ticket event records:
LOSE = "lose"  # a queued run the broker never delivered (its ticket records a FAIL)
RUN_TRANSITIONS: dict[tuple[str, str], str] = {
    (A.START, R.QUEUED): R.RUNNING,
    (A.SUCCEED, R.RUNNING): R.SUCCEEDED,
    (A.FAIL, R.RUNNING): R.FAILED,
    (A.WAIT, R.RUNNING): R.WAITING,
    (A.PROMOTE, R.WAITING): R.RUNNING,
    (A.RESUME, R.WAITING): R.RUNNING,
    (A.FAIL, R.WAITING): R.FAILED,  # the reaper, a released lock: the worker that waited is gone
    (A.CANCEL, R.QUEUED): R.CANCELLED,
    (A.CANCEL, R.WAITING): R.CANCELLING,
    (A.SWITCH_BACK, R.CANCELLING): R.CANCELLED,
    (A.FAIL, R.CANCELLING): R.FAILED,
    (LOSE, R.QUEUED): R.FAILED,  # the broker never delivered it
}


class WorkflowError(Exception):
    """A refused action; the message says why, in words for the user."""


class InvalidTransition(WorkflowError):
    pass


class Conflict(WorkflowError):
    """Another run holds the project; try again when it finishes."""


class StaleTicket(InvalidTransition):
    """The ticket was edited after the approver loaded it: what they reviewed
    is not what they would approve."""


class WindowClosed(WorkflowError):
    """A deploy outside the environment's deploy window or in a freeze."""


STALE_MESSAGE = gettext_lazy("The ticket changed since you loaded it; review it again.")


# The moves a person asks for, as the refusal above names them ("Cannot
# approve a ticket that is deployed"); the worker's own moves never reach people.
ACTION_VERBS = {
    A.APPROVE: gettext_lazy("approve"),
    A.APPROVE_PARTIAL: gettext_lazy("approve"),
    A.REJECT: gettext_lazy("reject"),
    A.CANCEL: gettext_lazy("cancel"),
    A.DEPLOY: gettext_lazy("deploy"),
    A.RETRY: gettext_lazy("retry"),
    A.PROMOTE: gettext_lazy("promote"),
    A.EDIT: gettext_lazy("edit"),
}


def _target(action: str, current: str) -> str:
    try:
        return TRANSITIONS[(action, current)]
    except KeyError:
        raise InvalidTransition(
            _("Cannot %(action)s a ticket that is %(status)s.")
            % {"action": ACTION_VERBS.get(action, action), "status": Ticket.Status(current).label.lower()}
        ) from None


def _changed_meanwhile(ticket: Ticket) -> InvalidTransition:
    return InvalidTransition(
        _("The ticket changed meanwhile; it is now %(status)s.") % {"status": ticket.get_status_display().lower()}
    )


def _move(ticket: Ticket, action: str, actor, note: str = "", *, seen: int | None = None, **fields) -> Ticket:
    """Compare-and-set the status (and, given ``seen``, the version the actor
    reviewed), write the event, refresh ``ticket``."""
    frm = ticket.status
    to = _target(action, frm)
    match = {"pk": ticket.pk, "status": frm} | ({} if seen is None else {"version": seen})
    updated = Ticket.objects.filter(**match).update(status=to, updated_at=timezone.now(), **fields)
    if updated != 1:
        ticket.refresh_from_db()
        if ticket.status == frm and seen is not None:
            raise StaleTicket(STALE_MESSAGE)
        raise _changed_meanwhile(ticket)
    # An edit that keeps the status records no status change.
    moved = {"from_status": frm, "to_status": to} if frm != to else {}
    TicketEvent.objects.create(ticket=ticket, actor=actor, action=action, note=note, **moved)
    ticket.refresh_from_db()
    return ticket


def _move_run(run: DeployRun, action: str, **fields) -> bool:
    """Compare-and-set a run from the status ``action`` starts at; False when
    it was not in that status any more (claimed, ended or cancelled meanwhile)."""
    starts = [frm for (name, frm) in RUN_TRANSITIONS if name == action]
    if not starts:
        raise KeyError(f"no run transition named {action!r}")
    moved = 0
    for frm in starts:
        to = RUN_TRANSITIONS[(action, frm)]
        moved += DeployRun.objects.filter(pk=run.pk, status=frm).update(status=to, **fields)
    return bool(moved)


def _initial_status(project: Project, kind: str) -> str:
    env = project.environment
    needs = env.rollback_needs_approval if kind == Ticket.Kind.ROLLBACK else env.deploy_needs_approval
    return S.PENDING if needs else S.APPROVED


def _check_hosts(project: Project, hosts: Iterable[Host] | None) -> list[Host]:
    allowed = list(project.hosts.filter(enabled=True))
    if hosts is None:
        chosen = allowed
    else:
        chosen = list(hosts)
        stray = [h for h in chosen if h not in allowed]
        if stray:
            raise WorkflowError(_("Host %(host)s is not an enabled host of this project.") % {"host": stray[0]})
    if not chosen:
        raise WorkflowError(_("Pick at least one host; the project has no enabled hosts."))
    return chosen


@transaction.atomic
def submit(
    actor, project: Project, *, title: str, ref: str, commit: str = "",
    description: str = "", hosts: Iterable[Host] | None = None, rollout_strategy: str = "",
) -> Ticket:
    """Open a deploy ticket. ``ref`` and ``commit`` must already be resolved
    against the repository (see :mod:`releases.repository`); ``rollout_strategy``
    ("" = the project's) may only be more careful than the project's."""
    require(actor, Action.SUBMIT, project)
    if not project.is_active:
        raise WorkflowError(_("This project is archived; activate it before deploying."))
    if rollout_strategy and not project.allows_strategy(rollout_strategy):
        raise WorkflowError(_("This project's rollout is %(rollout)s; a ticket may only pick a more careful one.")
                            % {"rollout": project.get_rollout_strategy_display()})
    chosen = _check_hosts(project, hosts)
    status = _initial_status(project, Ticket.Kind.DEPLOY)
    ticket = Ticket.objects.create(
        project=project, kind=Ticket.Kind.DEPLOY, title=title, description=description,
        author=actor, status=status, ref_kind=project.repo_mode, ref=ref, commit=commit,
        rollout_strategy=rollout_strategy,
    )
    ticket.hosts.set(chosen)
    TicketEvent.objects.create(ticket=ticket, actor=actor, action=A.SUBMIT, to_status=status)
    return ticket


@transaction.atomic
def edit(actor, ticket: Ticket, *, hosts: Iterable[Host] | None = None, **fields) -> Ticket:
    """Change a ticket before it runs. A rejected ticket goes back for approval;
    an approved one needs approval again when its content changes."""
    require(actor, Action.EDIT, ticket)
    editable = {"title", "description"} if ticket.is_rollback else {"title", "description", "ref", "commit"}
    unknown = set(fields) - editable
    if unknown or (ticket.is_rollback and hosts is not None):
        # A rollback restores what its deploy ticket replaced; only its wording may change.
        raise WorkflowError(_("Cannot edit %(fields)s of this ticket.") % {"fields": ", ".join(sorted(unknown) or ["hosts"])})
    current = Ticket.objects.select_for_update().get(pk=ticket.pk).status
    if current != ticket.status or current not in EDITABLE:
        raise InvalidTransition(_("Only a ticket that has not run yet can be edited, and this one changed meanwhile."))
    if hosts is not None:
        ticket.hosts.set(_check_hosts(ticket.project, hosts))
    note = stored(gettext_noop("changed %(fields)s"),
                  fields=", ".join(sorted(fields) + (["hosts"] if hosts is not None else [])))
    # A resubmitted rejection is a new version too, changed or not: approvals
    # given before the rejection must not carry over to the next round.
    if fields or hosts is not None or current == S.REJECTED:
        # A new version: an approval of what an approver saw before is refused,
        # and approvals given to earlier versions no longer count.
        if queries.current_approvals(ticket).exists():
            note = _join(note, stored(gettext_noop("earlier approvals no longer count")))
        fields["version"] = F("version") + 1
    needs_approval = _initial_status(ticket.project, ticket.kind) == S.PENDING
    if current == S.REJECTED:
        action = A.RESUBMIT if needs_approval else A.RESUBMIT_APPROVED
        return _move(ticket, action, actor, note, reject_reason="", **fields)
    if current == S.APPROVED and needs_approval:
        return _move(ticket, A.REOPEN, actor, _join(note, stored(gettext_noop("needs approval again"))), **fields)
    return _move(ticket, A.EDIT, actor, note, **fields)


@transaction.atomic
def approve(actor, ticket: Ticket, note: str = "", *, version: int) -> Ticket:
    """Approve ``ticket`` as it was at ``version``, the version the approver
    reviewed; raises StaleTicket (approving nothing) if it was edited since.

    The ticket becomes approved when approvals of its current version from
    distinct people reach the environment's N; until then it stays pending
    and the approval is recorded (an ``approve_partial`` event). A second
    approval by the same person is refused (AlreadyApproved).
    """
    # Lock the ticket first: two approvers at once must not both count one
    # approval short of N and leave it pending.
    locked = Ticket.objects.select_for_update().select_related("project__environment").get(pk=ticket.pk)
    require(actor, Action.APPROVE, locked)  # the policy first, as for every action
    if locked.status != ticket.status:
        raise _changed_meanwhile(locked)
    _target(A.APPROVE, locked.status)
    if locked.version != version:
        raise StaleTicket(STALE_MESSAGE)
    Approval.objects.create(ticket=locked, approver=actor, version=version)
    given, needed = queries.current_approvals(locked).count(), locked.approvals_required
    tally = stored(gettext_noop("%(given)d of %(needed)d approvals"), given=given, needed=needed)
    if given < needed:
        return _move(ticket, A.APPROVE_PARTIAL, actor, _join(tally, note), seen=version)
    return _move(ticket, A.APPROVE, actor, _join(tally, note) if needed > 1 else note, seen=version)


def _join(*parts: str) -> str:
    return "; ".join(part for part in parts if part)


@transaction.atomic
def reject(actor, ticket: Ticket, reason: str, *, version: int | None = None) -> Ticket:
    """Reject ``ticket``; given ``version``, only as the rejecter saw it."""
    require(actor, Action.REJECT, ticket)
    if not reason.strip():
        raise WorkflowError(_("Say why the ticket is rejected."))
    return _move(ticket, A.REJECT, actor, reason, seen=version, reject_reason=reason)


@transaction.atomic
def cancel(actor, ticket: Ticket, note: str = "") -> Ticket:
    """Cancel a ticket before it runs (a queued run is cancelled with it), or
    stop a rollout that waits for a promote: the ticket is then *cancelling*
    until the worker, at its next poll, has switched back the hosts this run
    switched (see ``finish_run``)."""
    require(actor, Action.CANCEL, ticket)  # for a waiting rollout, the right to promote (the policy)
    Ticket.objects.select_for_update().filter(pk=ticket.pk).first()
    waiting = DeployRun.objects.filter(ticket=ticket, status=R.WAITING).first() if ticket.is_waiting else None
    ticket = _move(ticket, A.CANCEL, actor, note, **UNSCHEDULED)
    if ticket.status == S.CANCELLING:
        # The worker reads the reason when it sees the run cancelling: the console,
        # the run's error and the timeline all say who stopped the rollout.
        reason = stored(gettext_noop("cancelled by %(user)s"), user=actor)
        if waiting is None or not _move_run(waiting, A.CANCEL, error=reason):
            raise InvalidTransition(_("The run stopped waiting meanwhile."))
        return ticket
    for run in DeployRun.objects.filter(ticket=ticket, status=R.QUEUED):
        _move_run(run, A.CANCEL, finished_at=timezone.now())
    return ticket


@transaction.atomic
def deploy(actor, ticket: Ticket, override_reason: str = "") -> DeployRun:
    """Queue a run of an approved (or failed) ticket on the background worker.

    Outside the environment's deploy window (or in a freeze) only an Owner may
    deploy, giving ``override_reason``; rollbacks are always allowed. The
    window is checked when the run is queued, not when the worker starts it.
    """
    return _deploy(actor, ticket, override_reason=override_reason)


def _deploy(actor, ticket: Ticket, *, override_reason: str = "", now=None, note: str = "",
            resumes: DeployRun | None = None) -> DeployRun:
    """deploy() inside the caller's transaction; ``now`` is the clock the
    window is checked against (a scheduled deploy's sweep time); ``resumes``
    makes the new run a retry of that failed run."""
    require(actor, Action.ROLLBACK if ticket.is_rollback else Action.DEPLOY, ticket)
    _check_window(actor, ticket, override_reason.strip(), now or timezone.now())
    # Serialise deploy requests per project so two tickets cannot both pass the
    # "nothing else is running" check.
    Project.objects.select_for_update().filter(pk=ticket.project_id).first()
    reap_stale_runs(ticket.project)
    busy = (
        Ticket.objects.filter(project=ticket.project, status__in=Ticket.ACTIVE_STATUSES)
        .exclude(pk=ticket.pk).first()
    )
    if busy:
        raise Conflict(_("Ticket #%(ticket)s of this project is %(status)s; deploy again when it has finished.")
                       % {"ticket": busy.pk, "status": busy.get_status_display().lower()})
    _check_hosts(ticket.project, ticket.hosts.all())  # hosts may have been disabled or removed since
    if ticket.scheduled_at is not None:
        # Deployed by hand before its time: the schedule is done with.
        TicketEvent.objects.create(ticket=ticket, actor=actor, action=A.UNSCHEDULE,
                                   note=stored(gettext_noop("deployed before its scheduled time")))
    ticket = _move(ticket, A.RETRY if resumes else A.DEPLOY, actor, note, **UNSCHEDULED)
    number = (ticket.runs.aggregate(n=Max("number"))["n"] or 0) + 1
    run = DeployRun.objects.create(ticket=ticket, number=number, triggered_by=actor, resumes=resumes)
    transaction.on_commit(lambda: _enqueue(run.pk))
    return run


@transaction.atomic
def retry(actor, ticket: Ticket, override_reason: str = "") -> DeployRun:
    """Run a failed deploy ticket again with the release its last run made:
    hosts with a complete copy are not copied again, hosts that finished are
    left alone, and a run that failed during the switch is completed."""
    ticket.refresh_from_db()  # the status the retry starts from is compare-and-set below
    last = queries.retryable_run(ticket)
    if last is None:
        raise InvalidTransition(_("Only a failed deploy whose run prepared a release can be retried."))
    return _deploy(actor, ticket, override_reason=override_reason,
                   note=stored(gettext_noop("retry of run %(n)s"), n=last.number), resumes=last)


@transaction.atomic
def promote(actor, ticket: Ticket) -> Ticket:
    """Let a waiting rollout switch its next batch; the worker sees it at its next poll."""
    require(actor, Action.PROMOTE, ticket)
    run = DeployRun.objects.filter(ticket=ticket, status=R.WAITING).first()
    ticket = _move(ticket, A.PROMOTE, actor)
    if run is None or not _move_run(run, A.PROMOTE):
        raise InvalidTransition(_("The run stopped waiting meanwhile."))
    return ticket


def wait_for_promote(run: DeployRun, number: int, total: int) -> None:
    """The worker's move: its rollout waits before batch ``number`` of ``total``."""
    with transaction.atomic():
        if _move_run(run, A.WAIT):
            ticket = Ticket.objects.get(pk=run.ticket_id)
            _move(ticket, A.WAIT, None, stored(gettext_noop("batch %(n)s/%(total)s waits for a promote"),
                                               n=number, total=total))


def stop_waiting(run: DeployRun, note: str) -> bool:
    """The worker gives up waiting (timeout, lost lease). True if it did;
    False if a promote came first (then the rollout goes on)."""
    with transaction.atomic():
        if not _move_run(run, A.RESUME):
            return False
        ticket = Ticket.objects.get(pk=run.ticket_id)
        if ticket.status == S.WAITING:
            _move(ticket, A.RESUME, None, note)
        return True


def _check_window(actor, ticket: Ticket, override_reason: str, now) -> None:
    """Refuse a deploy while the environment is closed, naming the next window;
    an Owner's override with a reason is recorded instead."""
    if ticket.is_rollback:
        return  # undoing a bad deploy must never wait for a window
    env = ticket.project.environment
    closed = windows.closed_message(env.calendar(), now, env.name)
    if closed is None:
        return
    if not override_reason:
        raise WindowClosed(closed)
    if not can_override_window(actor, ticket):
        raise PermissionDenied(_("Only an Owner of the project may deploy outside the deploy window."))
    TicketEvent.objects.create(ticket=ticket, actor=actor, action=A.WINDOW_OVERRIDE, note=override_reason)


def _enqueue(run_id: int) -> None:
    from django_q.tasks import async_task

    async_task("releases.tasks.run_deploy", run_id, task_name=f"walle-run-{run_id}")


@transaction.atomic
def request_rollback(actor, ticket: Ticket, release: str = "", title: str = "") -> Ticket:
    """Open a rollback ticket that undoes ``ticket`` on its hosts.

    Without ``release``, each host goes back to what was live before ``ticket``;
    a named kept release applies to every host.
    """
    require(actor, Action.ROLLBACK, ticket)
    if ticket.is_rollback:
        raise WorkflowError(_("Roll back the deploy ticket, not the rollback ticket."))
    switched = switched_hosts(ticket)
    if not switched.exists():
        raise WorkflowError(_("This ticket never switched any host; there is nothing to roll back."))
    if release and not kept_releases(ticket.project).filter(name=release).exists():
        raise WorkflowError(
            _("Release %(release)s is not kept on this project's hosts; pick a kept release.") % {"release": release}
        )
    status = _initial_status(ticket.project, Ticket.Kind.ROLLBACK)
    # A rollback ticket names what it returns to, wherever it is listed: the
    # release, and the ref and commit that release holds.
    target = queries.rollback_target(ticket, release)
    back_to = (stored(gettext_noop("back to %(release)s (%(ref)s %(commit)s)"),
                      release=target.name, ref=target.ticket.ref, commit=target.commit[:7]) if target
               else stored(gettext_noop("back to what each host served before")))
    rollback = Ticket.objects.create(
        project=ticket.project, kind=Ticket.Kind.ROLLBACK, author=actor, status=status,
        title=title or stored(gettext_noop("Roll back #%(ticket)s: %(back_to)s"), ticket=ticket.pk, back_to=back_to)[:200],
        ref_kind=target.ticket.ref_kind if target else ticket.ref_kind,
        ref=target.ticket.ref if target else ticket.ref, commit=target.commit if target else "",
        rollback_of=ticket, rollback_release=release,
    )
    # Only hosts this ticket actually switched go back: after a partial
    # failure the others never left the old release.
    rollback.hosts.set(switched)
    TicketEvent.objects.create(
        ticket=rollback, actor=actor, action=A.SUBMIT, to_status=status,
        note=stored(gettext_noop("rollback of #%(ticket)s to %(release)s") if release
                    else gettext_noop("rollback of #%(ticket)s"), ticket=ticket.pk, release=release),
    )
    return rollback


# --- Scheduled deploys ----------------------------------------------------------

@transaction.atomic
def schedule(actor, ticket: Ticket, at, version: int) -> Ticket:
    """Set an approved ticket, as it was at ``version``, to deploy at ``at``
    (an aware datetime in the future) as ``actor``. Scheduling again moves it."""
    require(actor, Action.ROLLBACK if ticket.is_rollback else Action.DEPLOY, ticket)
    if at <= timezone.now():
        raise WorkflowError(_("Pick a time in the future."))
    if not ticket.is_rollback:
        env = ticket.project.environment
        closed = windows.closed_message(env.calendar(), at, env.name)
        if closed:
            raise WindowClosed(_("Deploys are closed at that time. %(why)s") % {"why": closed})
    match = {"pk": ticket.pk, "status": S.APPROVED, "version": version}
    if not Ticket.objects.filter(**match).update(scheduled_at=at, scheduled_by=actor, scheduled_version=version):
        ticket.refresh_from_db()
        if ticket.status != S.APPROVED:
            raise InvalidTransition(_("Only an approved ticket can be scheduled; this one is %(status)s.")
                                    % {"status": ticket.get_status_display().lower()})
        raise StaleTicket(STALE_MESSAGE)
    zone = windows.Calendar(ticket.project.environment.time_zone)
    TicketEvent.objects.create(ticket=ticket, actor=actor, action=A.SCHEDULE,
                               note=f"{windows.local_text(zone, at)} {zone.zone}")
    ticket.refresh_from_db()
    return ticket


@transaction.atomic
def unschedule(actor, ticket: Ticket) -> Ticket:
    """Drop a ticket's schedule; it stays approved."""
    require(actor, Action.ROLLBACK if ticket.is_rollback else Action.DEPLOY, ticket)
    if not Ticket.objects.filter(pk=ticket.pk, scheduled_at__isnull=False).update(**UNSCHEDULED):
        raise InvalidTransition(_("This ticket is not scheduled."))
    TicketEvent.objects.create(ticket=ticket, actor=actor, action=A.UNSCHEDULE)
    ticket.refresh_from_db()
    return ticket


def run_due_schedules(now) -> list[DeployRun]:
    """Start every scheduled ticket whose time has come (never one before its
    time), as the user who scheduled it; returns the runs queued.

    Each ticket is claimed with a compare-and-set on its schedule, so of two
    workers sweeping at once only one starts it. A ticket edited since, no
    longer approved, outside its window or whose scheduler lost the right is
    refused: the schedule is cleared and the reason recorded.
    """
    due = Ticket.objects.filter(scheduled_at__lte=now).order_by("scheduled_at", "pk").values_list(
        "pk", "project_id")
    runs = []
    for pk, project_id in list(due):
        try:
            runs.append(_run_due(pk, project_id, now))
        except Exception:  # one broken ticket must not hold up the others; it is tried again next sweep
            logger.exception("scheduled deploy of ticket %s failed", pk)
    return [run for run in runs if run is not None]


def _run_due(pk: int, project_id: int, now) -> DeployRun | None:
    with transaction.atomic():
        # The project first, then the ticket: the order deploy() locks them in.
        Project.objects.select_for_update().filter(pk=project_id).first()
        ticket = Ticket.objects.select_for_update().select_related("scheduled_by").filter(
            pk=pk, scheduled_at__lte=now).first()
        if ticket is None or not Ticket.objects.filter(
            pk=pk, scheduled_at=ticket.scheduled_at, scheduled_version=ticket.scheduled_version
        ).update(**UNSCHEDULED):
            return None  # unscheduled meanwhile, or another worker claimed it
        user, version = ticket.scheduled_by, ticket.scheduled_version
        ticket.refresh_from_db()
        try:
            if ticket.status != S.APPROVED:
                raise WorkflowError(_("The ticket is %(status)s, no longer approved.")
                                    % {"status": ticket.get_status_display().lower()})
            if ticket.version != version:
                raise WorkflowError(_("The ticket was edited after it was scheduled; review it and schedule "
                                      "it again."))
            if user is None:
                raise WorkflowError(_("The user who scheduled it no longer exists."))
            with transaction.atomic():  # a refused deploy leaves nothing behind but the refusal
                return _deploy(user, ticket, now=now, note=stored(gettext_noop("scheduled deploy")))
        except (WorkflowError, PermissionDenied) as exc:
            TicketEvent.objects.create(ticket=ticket, action=A.SCHEDULE_REFUSED, note=str(exc))
            return None


# --- The worker's moves -------------------------------------------------------

def start_run(run_id: int, worker: str) -> DeployRun | None:
    """Claim a queued run. Returns None when someone else already did (a
    re-delivered task) or the ticket was cancelled: the caller does nothing."""
    with transaction.atomic():
        # Lock the ticket before the run, the same order as cancel(), so the two
        # never deadlock on PostgreSQL.
        ticket_id = DeployRun.objects.filter(pk=run_id).values_list("ticket_id", flat=True).first()
        Ticket.objects.select_for_update().filter(pk=ticket_id).first()
        run = DeployRun.objects.select_related("ticket").filter(pk=run_id).first()
        if run is None or not _move_run(run, A.START, started_at=timezone.now(), worker=worker):
            return None
        run.refresh_from_db()
        _move(run.ticket, A.START, None, f"run {run.number} on {worker}")
        return run


def finish_run(run: DeployRun, *, ok: bool, error: str = "", failed_batch: str = "") -> bool:
    """End a run and its ticket in a final status; every run ends here.
    Returns False when the run had already ended (and nothing changed).

    A run cancelled while it waited ends cancelled when no host serves its
    release any more (all switched back), else failed."""
    with transaction.atomic():
        action = A.SUCCEED if ok else A.FAIL
        if DeployRun.objects.filter(pk=run.pk, status=R.CANCELLING).exists():
            # No batch failed: a person stopped the rollout. A host still serving
            # the run's release (switching back failed) makes it a failure, so
            # the ticket offers a retry or a rollback.
            live = RunHost.objects.filter(run=run, status__in=RunHost.LIVE_STATUSES).exists()
            action, failed_batch = (A.FAIL if live else A.SWITCH_BACK), ""
        ended = _move_run(run, action, finished_at=timezone.now(), error=error, failed_batch=failed_batch)
        if not ended:
            return False  # already ended (reaped, lock released): a late worker must not touch the ticket
        ticket = Ticket.objects.get(pk=run.ticket_id)
        if ticket.status in (S.DEPLOYING, S.WAITING, S.CANCELLING):
            _move(ticket, action, None, error[:2000])
        if action == A.SWITCH_BACK:
            append_line(run, Stage.FINISH, Stream.INFO, _("Cancelled: every host this run switched serves what it "
                                                          "served before again."))
        return True


INTERRUPTED = gettext_noop("Interrupted: the worker stopped responding (lock lease expired).")


def interrupt(run: DeployRun) -> bool:
    """End a run whose worker died, and say so at the end of its console: the
    worker that would have written the last lines never will."""
    with transaction.atomic():
        if not finish_run(run, ok=False, error=stored(INTERRUPTED)):
            return False
        live = RunHost.objects.filter(run=run, status__in=RunHost.LIVE_STATUSES).select_related("host")
        switched = [result.host.endpoint for result in live]
        meaning = (
            stored(gettext_noop('Hosts that show "switched" (%(hosts)s) serve this run\'s release; '
                                "the others still serve what they served before."), hosts=", ".join(switched))
            if switched else stored(gettext_noop("No host had switched: every host still serves what it served before."))
        )
        append_line(run, Stage.FINISH, Stream.ERROR, stored(gettext_noop(
            "Interrupted: the worker stopped responding (its lock lease expired), so the run was ended. %(meaning)s"),
            meaning=meaning))
        return True


def lock_taken_over(dead: DeployRun, run: DeployRun, note: str) -> None:
    """The project lease of ``dead`` (whose worker stopped renewing it) went to
    ``run``: say so on both tickets and end the dead run."""
    TicketEvent.objects.create(ticket=dead.ticket, action=A.LOCK_TAKEN_OVER, note=note)
    TicketEvent.objects.create(ticket=run.ticket, action=A.LOCK_TAKEN_OVER, note=note)
    if dead.status in DeployRun.WORKING_STATUSES:
        interrupt(dead)


def reap_stale_runs(project: Project) -> list[DeployRun]:
    """Fail runs whose worker died: lock lease expired, or running with no lock.
    Returns the runs this call ended.

    Why here and not only in a sweeper: a dead run must never block the next
    deploy of the project (Walle tickets stuck in "deploying", #1007).
    """
    lease = timedelta(seconds=settings.WALLE_LOCK_LEASE)
    now = timezone.now()
    reaped = _reap_lost_queued(project, now)
    running = DeployRun.objects.filter(ticket__project=project, status__in=DeployRun.WORKING_STATUSES)
    for run in running:
        lock = ProjectLock.objects.filter(project=project, run=run).first()
        stale = lock.is_expired(now) if lock else (run.started_at or now) < now - lease
        if stale:
            ProjectLock.objects.filter(project=project, run=run).delete()
            if interrupt(run):
                reaped.append(run)
    return reaped


def _reap_lost_queued(project: Project, now) -> list[DeployRun]:
    """A run still queued long after the broker would have delivered it was
    lost (enqueue failed, broker wiped); fail it so the project is free again."""
    lost_after = timedelta(seconds=settings.Q_CLUSTER["retry"] + settings.WALLE_LOCK_LEASE)
    candidates = DeployRun.objects.filter(
        ticket__project=project, status=DeployRun.Status.QUEUED, created_at__lt=now - lost_after
    )
    lost = []
    for run in candidates:
        with transaction.atomic():
            if _move_run(run, LOSE, finished_at=now, error=stored(gettext_noop("Lost: the worker never picked it up."))):
                ticket = Ticket.objects.get(pk=run.ticket_id)
                if ticket.status == S.QUEUED:
                    _move(ticket, A.FAIL, None, stored(gettext_noop("the queued run was lost; deploy again")))
                append_line(run, Stage.FINISH, Stream.ERROR, stored(gettext_noop(
                    "Lost: no worker ever picked this run up, so nothing ran and no host changed. Deploy again.")))
                lost.append(run)
    return lost


def reap_all_stale_runs() -> list[DeployRun]:
    """Sweep every project with a live run (scheduled every minute); returns
    the runs it ended, so the caller can clean up after their dead workers."""
    projects = Project.objects.filter(tickets__runs__status__in=DeployRun.ACTIVE_STATUSES).distinct()
    return [run for project in projects for run in reap_stale_runs(project)]


@transaction.atomic
def release_lock(actor, project: Project) -> DeployRun | None:
    """A Maintainer frees a project whose run is stuck; that run ends as failed."""
    require(actor, Action.CONFIGURE, project)
    lock = ProjectLock.objects.select_related("run").filter(project=project).first()
    if lock is None:
        return None
    run = lock.run
    lock.delete()
    if run.status in DeployRun.WORKING_STATUSES:
        finish_run(run, ok=False, error=stored(gettext_noop("Lock released by %(user)s."), user=actor))
    TicketEvent.objects.create(ticket=run.ticket, actor=actor, action=A.RELEASE_LOCK,
                               note=stored(gettext_noop("run %(run)s"), run=run.number))
    return run
