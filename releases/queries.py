"""The reads the pages and the API share: one rule for each, so a filter, a
log page or a host's state means the same on a page as in the API.

Everything here only reads; changes go through ``releases.workflow``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from django.db.models import Count, F, IntegerField, Max, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce, Length
from django.utils.translation import gettext as _

from accounts.permissions import is_platform_admin, visible, visible_projects
from engine.plan import Stream
from projects import windows
from projects.models import Host, Project

from .models import Approval, DeployRun, LogLine, Release, RunHost, Ticket

RUNNING_RUN = (DeployRun.Status.QUEUED, DeployRun.Status.RUNNING)


# --- Tickets -----------------------------------------------------------------------

@dataclass(frozen=True)
class WindowState:
    """Whether a ticket may deploy now, in words for the ticket page and API."""

    open: bool
    text: str


def window_state(ticket: Ticket, now) -> WindowState | None:
    """The deploy window of the ticket's environment at ``now``; None when it
    does not matter (no windows or freezes, or a rollback, always allowed)."""
    env = ticket.project.environment
    cal = env.calendar()
    if ticket.is_rollback or not cal.restricted:
        return None
    closed = windows.closed_message(cal, now, env.name)
    if closed:
        return WindowState(False, closed)
    until = windows.open_until(cal, now)
    if until is None:
        return WindowState(True, _("Deploys open now."))
    same_day = until.astimezone(cal.tz).date() == now.astimezone(cal.tz).date()
    shown = f"{until.astimezone(cal.tz):%H:%M}" if same_day else windows.local_text(cal, until)
    return WindowState(True, _("Deploys open now until %(until)s %(zone)s.") % {"until": shown, "zone": cal.zone})


def scheduled_for(ticket: Ticket) -> str:
    """"Mon 2026-12-07 11:00 Asia/Shanghai": a schedule in the environment's zone."""
    if ticket.scheduled_at is None:
        return ""
    cal = windows.Calendar(ticket.project.environment.time_zone)
    return f"{windows.local_text(cal, ticket.scheduled_at)} {cal.zone}"


@dataclass(frozen=True)
class TicketFilter:
    """What a ticket list may be narrowed by (the list page's form and the API)."""

    project_id: int | None = None
    environment: str = ""  # slug
    status: str = ""
    kind: str = ""
    author: str = ""  # user name, case-insensitive
    text: str = ""  # in the title or ref, or the start of the commit


# A user who sees at least this share of the projects reads lists best served
# by walking ticket_created newest first (see listed_tickets).
WALK_CREATED_SHARE = 0.25


def listed_tickets(user, tickets: QuerySet[Ticket], wanted: TicketFilter) -> QuerySet[Ticket]:
    """A ticket list (the list page's and the API's): the tickets ``user`` may
    see, by the rule of ``accounts.permissions.visible()``, narrowed by ``wanted``."""
    if wanted.project_id is not None or is_platform_admin(user) or not _sees_many_projects(user):
        return filter_tickets(visible(user, tickets), wanted)
    # Lists are read newest first, a page at a time: walking the ticket_created
    # index, the database stops after a page. SQLite (even after ANALYZE)
    # serves "project_id IN (visible projects)" from the project index instead
    # and sorts every visible ticket (60-80 ms for 50,000 of 100,000). An
    # expression is no column, so "project_id + 0" keeps it off that index.
    # PostgreSQL walks ticket_created either way. For a project filter, or a
    # user who sees few projects (whose tickets the walk would find only after
    # passing everyone else's), the project index is the right one: visible() above.
    unindexed = tickets.alias(project_id_expr=F("project_id") + 0)
    return filter_tickets(unindexed.filter(project_id_expr__in=visible_projects(user).values("pk")), wanted)


def _sees_many_projects(user) -> bool:
    counts = Project.objects.aggregate(
        seen=Count("pk", filter=Q(pk__in=visible_projects(user).values("pk"))), all=Count("pk"))
    return counts["seen"] >= WALK_CREATED_SHARE * counts["all"]


def filter_tickets(tickets: QuerySet[Ticket], wanted: TicketFilter) -> QuerySet[Ticket]:
    """Narrow an already permission-filtered queryset."""
    if wanted.project_id is not None:
        tickets = tickets.filter(project_id=wanted.project_id)
    if wanted.environment:
        tickets = tickets.filter(project__environment__slug=wanted.environment)
    if wanted.status:
        tickets = tickets.filter(status=wanted.status)
    if wanted.kind:
        tickets = tickets.filter(kind=wanted.kind)
    if author := wanted.author.strip():
        tickets = tickets.filter(author__username__iexact=author)
    if text := wanted.text.strip():
        tickets = tickets.filter(Q(title__icontains=text) | Q(ref__icontains=text) | Q(commit__istartswith=text))
    return tickets


# --- Approvals -----------------------------------------------------------------------

def current_approvals(ticket: Ticket) -> QuerySet[Approval]:
    """The approvals that count: those of the ticket's current version (an
    edit makes a new version, so earlier ones stay as history only)."""
    return ticket.approvals.filter(version=ticket.version).select_related("approver").order_by("created_at", "id")


@dataclass(frozen=True)
class ApprovalState:
    """Who approved the current version and how many approvals it needs."""

    required: int
    given: list[Approval]

    @property
    def count(self) -> int:
        return len(self.given)

    @property
    def missing(self) -> int:
        return max(self.required - self.count, 0)


def approval_state(ticket: Ticket) -> ApprovalState | None:
    """For the ticket page: None where the ticket never waited for approval
    and nobody approved it (e.g. in test, where deploys need none)."""
    given = list(current_approvals(ticket))
    if ticket.status != Ticket.Status.PENDING and not given:
        return None
    return ApprovalState(ticket.approvals_required, given)


def with_approval_counts(tickets: QuerySet[Ticket]) -> QuerySet[Ticket]:
    """Annotate ``approvals_given`` (approvals of each ticket's current
    version) in the list's own query: no query per row."""
    counted = (
        Approval.objects.filter(ticket=OuterRef("pk"), version=OuterRef("version"))
        .order_by().values("ticket").annotate(n=Count("pk")).values("n")
    )
    return tickets.annotate(approvals_given=Coalesce(Subquery(counted, output_field=IntegerField()), 0))


# --- Releases and hosts -------------------------------------------------------------

def switched_hosts(ticket: Ticket) -> QuerySet[Host]:
    """Hosts whose webroot some run of ``ticket`` switched: what a rollback covers."""
    return Host.objects.filter(
        run_results__run__ticket=ticket, run_results__status__in=RunHost.LIVE_STATUSES
    ).distinct()


def retryable_run(ticket: Ticket) -> DeployRun | None:
    """The failed run a retry of ``ticket`` would reuse, or None: the latest
    run of a failed deploy ticket, if it got as far as naming its release."""
    if ticket.is_rollback or ticket.status != Ticket.Status.FAILED:
        return None
    run = ticket.latest_run()
    if run is None or run.status != DeployRun.Status.FAILED or not run.release_name or not run.commit:
        return None
    return run


def finished_hosts(run: DeployRun) -> frozenset[int]:
    """Host ids the run switched with post_release done: a retry leaves them alone."""
    return frozenset(run.host_results.filter(status=RunHost.Status.DONE).values_list("host_id", flat=True))


def kept_releases(project: Project):
    """Release names still on disk (not removed by keep-N), newest first."""
    return (
        Release.objects.filter(project=project, removed_at__isnull=True)
        .values("name").distinct().order_by("-name")
    )


def releases_before(ticket: Ticket) -> dict[int, str]:
    """Per host id, the release that was live before ``ticket`` switched it
    ("" when nothing was). The earliest run that switched a host knows; a later
    re-run's "previous" is the ticket's own release."""
    return dict(
        RunHost.objects.filter(run__ticket=ticket, status__in=RunHost.LIVE_STATUSES)
        .order_by("-run__number").values_list("host_id", "previous_release")
    )


def rollback_target(ticket: Ticket, release: str = "") -> Release | None:
    """The release a rollback of ``ticket`` returns every host to: the named
    one, or what all its hosts served before. None when that differs per host
    (or was nothing)."""
    names = {release} if release else set(releases_before(ticket).values())
    if len(names) != 1 or "" in names:
        return None
    return Release.objects.filter(project=ticket.project_id, name=names.pop()).select_related("ticket").first()


class LiveRow(NamedTuple):
    """One row of the dashboard's "live now" as it shows it: plain values, no
    model instances (up to one row per project, 200 of them for a superuser)."""

    project: str
    environment: str  # as Environment.__str__ shows it: its name
    commit: str
    ticket_id: int
    title: str
    by: str  # who switched it: the run's trigger, else the ticket's author (as User.__str__: the username)
    switched_at: datetime | None
    hosts: int  # live hosts of the project on this commit


# The shown release's values, in LiveRow's order but for "by", which one of the
# two user names (run__ left-joins to None when there is no run or no trigger).
_LIVE_FIELDS = ("project__name", "project__environment__name", "commit", "ticket_id", "ticket__title",
                "run__triggered_by__username", "ticket__author__username", "switched_at")


def live_rows(live: QuerySet[Release]) -> list[LiveRow]:
    """The dashboard's "live now": one row per project and live commit (hosts
    on the same commit collapse into a count), each shown by its release on
    the first host by address. Plain tuples are read for every live release,
    and for the rows shown their values, with no model instances."""
    firsts: dict[tuple[int, str], int] = {}
    hosts: dict[tuple[int, str], int] = {}
    for pk, project_id, commit in live.order_by("project__name", "host__address").values_list(
        "pk", "project_id", "commit"
    ):
        firsts.setdefault((project_id, commit), pk)
        hosts[(project_id, commit)] = hosts.get((project_id, commit), 0) + 1
    shown = {
        pk: values for pk, *values in live.filter(pk__in=list(firsts.values())).values_list("pk", *_LIVE_FIELDS)
    }
    rows = []
    for key, pk in firsts.items():
        if pk in shown:
            project, environment, commit, ticket_id, title, trigger, author, switched_at = shown[pk]
            by = author if trigger is None else trigger
            rows.append(LiveRow(project, environment, commit, ticket_id, title, by, switched_at, hosts[key]))
    return rows


@dataclass(frozen=True)
class HostChip:
    name: str  # as the engine names the host (Host.endpoint)
    label: str
    state: str
    text: str


def host_chips(ticket: Ticket, run: DeployRun | None) -> list[HostChip]:
    """A chip per host: the stage of its last console line while the run
    works, its recorded result after. Two queries, whatever the host count."""
    hosts = list(ticket.hosts.order_by("address", "port"))
    if run is None:
        return [HostChip(h.endpoint, h.label, "idle", "\u2014") for h in hosts]
    if run.status not in RUNNING_RUN:
        results = {r.host_id: r for r in run.host_results.all()}
        return [
            HostChip(h.endpoint, h.label, results[h.pk].status, results[h.pk].get_status_display())
            if h.pk in results else HostChip(h.endpoint, h.label, "idle", "\u2014")
            for h in hosts
        ]
    last_seqs = run.log_lines.exclude(host="").values("host").annotate(last=Max("seq")).values("last")
    last = {
        row["host"]: row for row in run.log_lines.filter(seq__in=last_seqs).values("host", "stage", "stream")
    }
    chips = []
    for host in hosts:
        row = last.get(host.endpoint)
        if row is None:
            chips.append(HostChip(host.endpoint, host.label, "waiting", "waiting"))
        else:
            state = "failed" if row["stream"] == Stream.ERROR else "running"
            chips.append(HostChip(host.endpoint, host.label, state, row["stage"]))
    return chips


# --- Console log --------------------------------------------------------------------

class ConsoleLine(NamedTuple):
    """One console line as pages and the API show it: a plain row, because a
    page holds up to thousands of them and a model instance each costs more
    than the query."""

    seq: int
    created_at: datetime
    host: str
    stage: str
    stream: str
    text: str


CONSOLE_FIELDS = ConsoleLine._fields


@dataclass(frozen=True)
class LogPage:
    """Consecutive lines of one run's console, and whether more lie on either side."""

    lines: list[ConsoleLine]
    more_before: bool
    more_after: bool


EMPTY_PAGE = LogPage([], more_before=False, more_after=False)


def log_page(
    run: DeployRun | None, *, after: int | None = None, before: int | None = None, max_lines: int, max_bytes: int
) -> LogPage:
    """One page of a run's console: the lines before ``before`` (or the tail,
    when neither is given), else the lines after ``after``. Both bounded."""
    if run is None:
        return EMPTY_PAGE
    if before is not None or after is None:
        return page_before(run, before, max_lines=max_lines, max_bytes=max_bytes)
    return page_after(run, after, max_lines=max_lines, max_bytes=max_bytes)


def page_after(run: DeployRun, after: int, *, max_lines: int, max_bytes: int) -> LogPage:
    """The first lines with seq > ``after``: at most ``max_lines`` and, beyond
    the first line, at most ``max_bytes`` of text."""
    lines, cut = _bounded(run.log_lines.filter(seq__gt=after).order_by("seq"), max_lines, max_bytes)
    first = lines[0].seq if lines else after + 1
    return LogPage(lines, more_before=run.log_lines.filter(seq__lt=first).exists(), more_after=cut)


def page_before(run: DeployRun, before: int | None, *, max_lines: int, max_bytes: int) -> LogPage:
    """The last lines with seq < ``before`` (None: the console's tail), in order,
    bounded like :func:`page_after`."""
    queryset = run.log_lines.all() if before is None else run.log_lines.filter(seq__lt=before)
    lines, cut = _bounded(queryset.order_by("-seq"), max_lines, max_bytes)
    lines.reverse()
    last = lines[-1].seq if lines else (before - 1 if before is not None else 0)
    return LogPage(lines, more_before=cut, more_after=run.log_lines.filter(seq__gt=last).exists())


def _bounded(ordered: QuerySet[LogLine], max_lines: int, max_bytes: int) -> tuple[list[ConsoleLine], bool]:
    """The leading lines of ``ordered`` within the bounds, and whether any were
    left out. Sizes are read first, so no more text than fits is loaded."""
    sizes = list(ordered.annotate(chars=Length("text")).values_list("seq", "chars")[: max_lines + 1])
    cut = len(sizes) > max_lines
    total, seqs = 0, []
    for seq, chars in sizes[:max_lines]:
        # A character is at least one byte: this never leaves out a line that fits.
        if seqs and total + chars > max_bytes:
            cut = True
            break
        total += chars
        seqs.append(seq)
    # The chosen lines are the leading ones of ``ordered``, so they are exactly
    # its lines between the lowest and highest seq: a range, not a list of seqs.
    window = ordered.filter(seq__gte=min(seqs), seq__lte=max(seqs)) if seqs else ordered.none()
    lines = [ConsoleLine._make(row) for row in window.values_list(*CONSOLE_FIELDS)]
    total, kept = 0, []
    for line in lines:  # now by real (UTF-8) size
        size = len(line.text.encode())
        if kept and total + size > max_bytes:
            cut = True
            break
        total += size
        kept.append(line)
    return kept, cut
