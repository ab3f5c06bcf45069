"""The HTML pages of tickets: thin views that parse input, ask the permission
policy, call one workflow or repository function, and render.

No status is changed here (only :mod:`releases.workflow` does that) and no
permission is decided here (only :mod:`accounts.permissions` does that).
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_POST

from accounts.permissions import (
    Action,
    approvable,
    can,
    can_override_window,
    denial_reason,
    get_visible_or_404,
    require,
    visible,
    visible_projects,
)
from engine.git import GitError
from engine.plan import Stage
from projects.models import Project, RepoMode, RolloutStrategy

from . import queries, repository, workflow
from .forms import (
    BadParameter,
    EditTicketForm,
    NewTicketForm,
    RejectForm,
    RollbackForm,
    ScheduleForm,
    TicketFilterForm,
    parse_count,
)
from .models import DeployRun, Release, Ticket

S = Ticket.Status
STAGES = [stage.value for stage in Stage]
LOG_BATCH = 2000  # lines per JSON answer; the poller asks again at once when there are more
LOG_TAIL = 500  # lines the ticket page renders; earlier ones load on request
DASHBOARD_ROWS = 25  # tickets the dashboard lists as waiting for approval; the rest are counted


# --- helpers -------------------------------------------------------------------

def _moves(action: str, status: str) -> bool:
    """Does the workflow's transition table allow ``action`` from ``status``?"""
    return (action, status) in workflow.TRANSITIONS


def ticket_actions(user, ticket: Ticket) -> dict[str, bool]:
    """Which buttons to show: the policy allows it AND the status allows it."""
    status = ticket.status
    # Running a rollback ticket needs the rollback right, as in workflow.deploy.
    may_run = can(user, Action.ROLLBACK if ticket.is_rollback else Action.DEPLOY, ticket)
    return {
        "approve": _moves("approve", status) and can(user, Action.APPROVE, ticket),
        "reject": _moves("reject", status) and can(user, Action.REJECT, ticket),
        "deploy": _moves("deploy", status) and may_run,
        "override": _moves("deploy", status) and may_run and can_override_window(user, ticket),
        "schedule": status == S.APPROVED and may_run,
        "unschedule": ticket.scheduled_at is not None and may_run,
        "cancel": _moves("cancel", status) and can(user, Action.CANCEL, ticket),
        "edit": status in workflow.EDITABLE and can(user, Action.EDIT, ticket),
        "rollback": not ticket.is_rollback and can(user, Action.ROLLBACK, ticket)
        and queries.switched_hosts(ticket).exists(),
        "promote": _moves("promote", status) and can(user, Action.PROMOTE, ticket),
        "retry": may_run and queries.retryable_run(ticket) is not None,
    }


def blocked_actions(user, ticket: Ticket, actions: dict[str, bool]) -> dict[str, str]:
    """Buttons the ticket's status offers but the policy refuses this user,
    with the policy's reason: shown disabled, so an action never just vanishes.
    Only for people who work on the project (Developers and up)."""
    if not can(user, Action.SUBMIT, ticket.project):
        return {}
    status = ticket.status
    offered = {
        "approve": (_moves("approve", status), Action.APPROVE),
        "deploy": (_moves("deploy", status), Action.ROLLBACK if ticket.is_rollback else Action.DEPLOY),
        "rollback": (not ticket.is_rollback and status == S.SUCCEEDED, Action.ROLLBACK),
    }
    return {
        name: denial_reason(user, action, ticket)
        for name, (on_offer, action) in offered.items() if on_offer and not actions[name]
        and (name != "rollback" or queries.switched_hosts(ticket).exists())
    }


def waiting_for(ticket: Ticket, approvals: queries.ApprovalState | None) -> str:
    """Who a pending ticket waits for, named by group, and how many more."""
    if ticket.status != S.PENDING or approvals is None:
        return ""
    values = {"group": ticket.project.team.name, "n": approvals.missing}
    self_ok = ticket.project.environment.allow_self_approval
    if approvals.required == 1:
        if self_ok:
            return _("Waiting for approval by a Maintainer or Owner of %(group)s.") % values
        return _("Waiting for approval by a Maintainer or Owner of %(group)s other than its submitter.") % values
    if not approvals.given:
        if self_ok:
            return _("Waiting for %(n)d approvals by different Maintainers or Owners of %(group)s.") % values
        return _("Waiting for %(n)d approvals by different Maintainers or Owners of %(group)s other than its "
                 "submitter.") % values
    if self_ok:
        return ngettext(
            "Waiting for %(n)d more approval by a Maintainer or Owner of %(group)s other than those who approved.",
            "Waiting for %(n)d more approvals by Maintainers or Owners of %(group)s other than those who approved.",
            approvals.missing) % values
    return ngettext(
        "Waiting for %(n)d more approval by a Maintainer or Owner of %(group)s other than its submitter and "
        "those who approved.",
        "Waiting for %(n)d more approvals by Maintainers or Owners of %(group)s other than its submitter and "
        "those who approved.",
        approvals.missing) % values


def console_state(ticket: Ticket, run: DeployRun | None, details: bool) -> dict:
    """Status, stage, progress and host chips: the page and the poller share it.
    Host chips (addresses, per-host stage) need VIEW_DETAILS, as in the API."""
    stage = run.stage if run else ""
    if ticket.status == S.SUCCEEDED:
        progress = 100
    else:
        progress = round(100 * (STAGES.index(stage) + 1) / len(STAGES)) if stage in STAGES else 0
    return {
        "status": ticket.status, "status_label": ticket.get_status_display(),
        "active": ticket.status in Ticket.ACTIVE_STATUSES, "stage": stage, "progress": progress,
        "run": run.number if run else None,
        "run_status": run.status if run else "", "run_status_label": run.get_status_display() if run else "",
        "waiting": ticket.status == S.WAITING,
        "hosts": [vars(chip) for chip in queries.host_chips(ticket, run)] if details else [],
    }


def _line(line: queries.ConsoleLine) -> dict:
    return {"seq": line.seq, "time": line.created_at.strftime("%H:%M:%S"), "host": line.host,
            "stage": line.stage, "stream": line.stream, "text": line.text}


def _visible_ticket(request: HttpRequest, pk: int) -> Ticket:
    return get_visible_or_404(request.user, Ticket.objects.select_related("project__environment"), pk)


def _act(request: HttpRequest, ticket: Ticket, perform: Callable[[Ticket], object],
         done: str | Callable[[object], str]) -> HttpResponse:
    """Run one workflow action on a visible ticket. A refused transition is a
    message; a PermissionDenied propagates to the 403 page with its reason.
    ``done`` is the success message, or makes it from the action's result."""
    try:
        result = perform(ticket)
    except workflow.WorkflowError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, done(result) if callable(done) else done)
    return redirect("ticket_detail", pk=ticket.pk)


# --- pages -----------------------------------------------------------------------

@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    user = request.user
    # The newest few, and how many more: a backlog of thousands must not make
    # the dashboard slow (the ticket list pages through them).
    pending = queries.with_approval_counts(approvable(user, Ticket.objects.filter(status=S.PENDING)))
    to_approve = list(pending.select_related("project__environment", "author")[:DASHBOARD_ROWS])
    more_to_approve = pending.count() - len(to_approve)
    running = visible(user, Ticket.objects.filter(status__in=Ticket.ACTIVE_STATUSES)).select_related(
        "project__environment", "author")
    live = visible(user, Release.objects.filter(is_live=True))
    return render(request, "releases/dashboard.html", {
        "to_approve": to_approve, "more_to_approve": more_to_approve, "running": running,
        "live_rows": queries.live_rows(live),
        "can_submit": visible_projects(user, Action.SUBMIT).exists(),
    })


@login_required
def ticket_list(request: HttpRequest) -> HttpResponse:
    try:
        number = parse_count(request.GET.get("page"), "page", minimum=1)
    except BadParameter as exc:
        return HttpResponseBadRequest(escape(str(exc)))
    form = TicketFilterForm(request.user, request.GET or None)
    tickets = Ticket.objects.select_related("project__environment", "author")
    tickets = queries.listed_tickets(request.user, tickets, form.wanted()).order_by("-created_at", "-id")
    tickets = queries.with_approval_counts(tickets)
    page = Paginator(tickets, 25).get_page(number)
    return render(request, "releases/ticket_list.html", {"form": form, "page": page})


def _browse(project: Project | None, ref: str, commit: str) -> dict:
    """What the chooser shows: the project's refs, the ref's recent commits and
    the preview of the chosen commit (default: the ref's tip) against live, as
    of the worker's last fetch, and how old that is."""
    ctx: dict = {"refs": [], "commits": [], "preview": None, "commit": "", "repo_error": "", "fetch": None}
    if project is None:
        return ctx
    try:
        refs = repository.refs(project)
        ctx["refs"] = refs["tags" if project.repo_mode == RepoMode.TAG else "branches"]
        if ref in ctx["refs"]:
            ctx["commits"] = repository.commits(project, ref, limit=20)
            ctx["commit"] = repository.resolve(project, ref, commit).commit
            ctx["preview"] = repository.preview(project, ctx["commit"])
    except (repository.RepositoryError, GitError) as exc:
        ctx["repo_error"] = str(exc)
    ctx["fetch"] = repository.fetch_status(project)  # after refs(), which may have queued the first fetch
    if ctx["fetch"].in_progress and ctx["repo_error"] and not ctx["refs"]:
        ctx["repo_error"] = ""  # "never fetched": the fetch status says so, and the page follows it
    return ctx


def _submit_projects(user) -> QuerySet[Project]:
    return visible_projects(user, Action.SUBMIT).filter(is_active=True).select_related("environment")


def _chosen_project(user, raw: str | None) -> Project | None:
    """The project a request names, if the user may open tickets for it.
    Raises BadParameter for anything but a plain number."""
    pk = parse_count(raw, "project")
    return None if pk is None else _submit_projects(user).filter(pk=pk).first()


@login_required
def ticket_new(request: HttpRequest) -> HttpResponse:
    projects = _submit_projects(request.user)
    source = request.POST if request.method == "POST" else request.GET
    try:
        project = _chosen_project(request.user, source.get("project"))
    except BadParameter as exc:
        return HttpResponseBadRequest(escape(str(exc)))
    ref, commit = source.get("ref", ""), source.get("commit", "")
    form = NewTicketForm(request.user, request.POST or None, project=project)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            ticket = workflow.submit(
                request.user, data["project"], title=data["title"], description=data["description"],
                ref=form.resolved.ref, commit=form.resolved.commit, hosts=data["hosts"],
                rollout_strategy=data["rollout_strategy"],
            )
        except workflow.WorkflowError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, _("Ticket #%(id)s submitted.") % {"id": ticket.pk})
            return redirect("ticket_detail", pk=ticket.pk)
    ctx = _browse(project, ref, commit)
    if request.method == "GET" and ctx["commit"]:
        form = NewTicketForm(request.user, project=project, initial={
            "project": project, "ref": ref, "commit": ctx["commit"], "hosts": list(project.hosts.filter(enabled=True)),
            "title": Ticket.default_title(ref, ctx["commit"]),
        })
    return render(request, "releases/ticket_new.html", {
        **ctx, "projects": projects, "project": project, "ref": ref, "form": form,
        "watch_fetch": request.method == "GET" and bool(ctx["fetch"] and ctx["fetch"].in_progress),
    })


@login_required
@require_POST
def ticket_new_refresh(request: HttpRequest) -> HttpResponse:
    """Ask the worker to fetch the project's repository (rate-limited), then
    show the chooser again; the page follows the fetch."""
    try:
        project = _chosen_project(request.user, request.POST.get("project"))
    except BadParameter as exc:
        return HttpResponseBadRequest(escape(str(exc)))
    if project is None:
        return redirect("ticket_new")
    try:
        queued = repository.request_refresh(project)
    except repository.RepositoryError as exc:
        messages.error(request, str(exc))
    else:
        messages.info(request, _("The worker is fetching the repository; the lists update when it is done.")
                      if queued else _("A fetch was asked for moments ago or is still running; "
                                       "the lists update when it is done."))
    query = {"project": project.pk} | ({"ref": request.POST["ref"]} if request.POST.get("ref") else {})
    return redirect(f"{reverse('ticket_new')}?{urlencode(query)}")


@login_required
@require_GET
def ticket_new_fetch_status(request: HttpRequest) -> JsonResponse:
    """Whether the worker is still fetching the project's repository: the
    new-ticket page polls this and reloads when a fetch has finished."""
    try:
        project = _chosen_project(request.user, request.GET.get("project"))
    except BadParameter as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    if project is None:
        return JsonResponse({"error": _("No such project.")}, status=404)
    status = repository.fetch_status(project)
    return JsonResponse({
        "in_progress": status.in_progress, "fetched_at": status.fetched_at.isoformat() if status.fetched_at else None,
    })


@login_required
def ticket_detail(request: HttpRequest, pk: int) -> HttpResponse:
    tickets = Ticket.objects.select_related("project__environment", "author", "rollback_of")
    ticket = get_visible_or_404(request.user, tickets, pk)
    details = can(request.user, Action.VIEW_DETAILS, ticket)
    run = ticket.latest_run()
    actions = ticket_actions(request.user, ticket)
    # Only the console's tail: a run may hold tens of thousands of lines.
    tail = _log_page(run, before=None, max_lines=LOG_TAIL) if run and details else None
    preview, preview_error = _review(ticket) if details else (None, "")
    window = queries.window_state(ticket, timezone.now())
    approvals = queries.approval_state(ticket)
    return render(request, "releases/ticket_detail.html", {
        "blocked": blocked_actions(request.user, ticket, actions), "waiting_for": waiting_for(ticket, approvals),
        "approvals": approvals,
        "preview": preview, "preview_error": preview_error,
        "ticket": ticket, "actions": actions, "details": details, "run": run,
        "window": window, "deploy_closed": bool(window and not window.open),
        "schedule_form": ScheduleForm(ticket) if actions["schedule"] else None,
        "scheduled_for": queries.scheduled_for(ticket),
        "events": ticket.events.select_related("actor"), "hosts": ticket.hosts.all(),
        "results": run.host_results.select_related("host") if run and details else [],
        "lines": tail.lines if tail else [], "more_before": bool(tail and tail.more_before),
        "console": console_state(ticket, run, details), "stages": STAGES,
        "reject_form": RejectForm() if actions["reject"] else None,
        "rollback_form": RollbackForm(ticket) if actions["rollback"] else None,
        "rollbacks": ticket.rollbacks.all(),
        "rollout": rollout_text(ticket),
    })


def rollout_text(ticket: Ticket) -> str:
    """The rollout the ticket's next run uses, in words."""
    if ticket.is_rollback:
        return ""
    project = ticket.project
    strategy = RolloutStrategy(ticket.rollout_strategy or project.rollout_strategy)
    text = str(strategy.label)
    if strategy == RolloutStrategy.CANARY:
        rest = (_("batches of %(n)s") % {"n": project.batch_size} if project.batch_size else
                _("batches of %(p)s%%") % {"p": project.batch_percent} if project.batch_percent else _("the rest"))
        text = _("Canary of %(n)s, then %(rest)s") % {"n": project.canary_hosts, "rest": rest}
    if project.promote_required and strategy != RolloutStrategy.ALL_AT_ONCE:
        text += " · " + _("each later batch waits for a promote")
    if project.health_path or project.health_command:
        text += " · " + _("health gate after each batch")
    return text


# A ticket is reviewed before it runs: then "what it changes" is live -> its commit.
REVIEWED = (S.PENDING, S.APPROVED, S.REJECTED)


def _review(ticket: Ticket) -> tuple[dict | None, str]:
    """What a deploy ticket awaiting its run would change, for the approver:
    the same preview its author saw (commits, file diffs), or why it can't be shown."""
    if ticket.is_rollback or ticket.status not in REVIEWED:
        return None, ""
    try:
        return repository.preview(ticket.project, ticket.commit), ""
    except repository.RepositoryError as exc:
        return None, str(exc)


def _log_page(run: DeployRun | None, *, before: int | None = None, after: int | None = None,
              max_lines: int = LOG_BATCH) -> queries.LogPage:
    return queries.log_page(run, before=before, after=after, max_lines=max_lines,
                            max_bytes=settings.WALLE_API_LOG_PAGE_BYTES)


@login_required
def ticket_log(request: HttpRequest, pk: int) -> JsonResponse:
    """Console lines of the latest run, plus live status: the new ones after
    ``after`` (the poller), or the earlier ones before ``before`` ("load
    earlier"). Read-only: polling (or reloading) never touches the deploy."""
    ticket = get_visible_or_404(request.user, Ticket.objects.select_related("project__environment"), pk)
    try:
        require(request.user, Action.VIEW_DETAILS, ticket)
    except PermissionDenied as exc:
        return JsonResponse({"error": str(exc)}, status=403)
    try:
        after = parse_count(request.GET.get("after"), "after")
        before = parse_count(request.GET.get("before"), "before")
    except BadParameter as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    run = ticket.latest_run()
    if before is not None:
        earlier = _log_page(run, before=before)
        return JsonResponse({
            "run": run.number if run else None, "lines": [_line(line) for line in earlier.lines],
            "first_seq": earlier.lines[0].seq if earlier.lines else before, "more_before": earlier.more_before,
        })
    after = after or 0
    page = _log_page(run, after=after)
    return JsonResponse({
        **console_state(ticket, run, details=True), "lines": [_line(line) for line in page.lines],
        "last_seq": page.lines[-1].seq if page.lines else after, "more": page.more_after,
    })


@login_required
def ticket_edit(request: HttpRequest, pk: int) -> HttpResponse:
    ticket = get_visible_or_404(request.user, Ticket.objects.select_related("project__environment"), pk)
    require(request.user, Action.EDIT, ticket)  # before the form may fetch the repository
    form = EditTicketForm(ticket, request.POST or None)
    if request.method == "POST" and form.is_valid():
        fields, hosts = form.changes()
        try:
            workflow.edit(request.user, ticket, hosts=hosts, **fields)
        except workflow.WorkflowError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, _("Ticket updated."))
            return redirect("ticket_detail", pk=ticket.pk)
    return render(request, "releases/ticket_edit.html", {"ticket": ticket, "form": form})


# --- one small POST view per workflow action -------------------------------------

def _seen_version(request: HttpRequest) -> int | None:
    """The ticket version the page showed (the form's hidden ``version``)."""
    return parse_count(request.POST.get("version"), "version", minimum=1)


@login_required
@require_POST
def ticket_approve(request: HttpRequest, pk: int) -> HttpResponse:
    ticket = _visible_ticket(request, pk)
    require(request.user, Action.APPROVE, ticket)  # the refusal does not depend on what was posted
    try:
        version = _seen_version(request)
    except BadParameter as exc:
        return HttpResponseBadRequest(escape(str(exc)))
    if version is None:
        return HttpResponseBadRequest(_("The approval does not name the version of the ticket you reviewed; "
                                        "reload the ticket and approve it again."))
    return _act(request, ticket, lambda t: workflow.approve(request.user, t, version=version), _approved_message)


def _approved_message(ticket: Ticket) -> str:
    if ticket.status == S.APPROVED:
        return _("Ticket approved.")
    return _("Your approval is recorded; the ticket needs more approvals.")


@login_required
@require_POST
def ticket_reject(request: HttpRequest, pk: int) -> HttpResponse:
    ticket = _visible_ticket(request, pk)
    require(request.user, Action.REJECT, ticket)
    reason = request.POST.get("reason", "")
    try:
        version = _seen_version(request)
    except BadParameter as exc:
        return HttpResponseBadRequest(escape(str(exc)))
    return _act(request, ticket, lambda t: workflow.reject(request.user, t, reason, version=version),
                _("Ticket rejected."))


@login_required
@require_POST
def ticket_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    return _act(request, _visible_ticket(request, pk), lambda t: workflow.cancel(request.user, t), _cancelled)


def _cancelled(ticket: Ticket) -> str:
    if ticket.status == S.CANCELLING:
        return _("Cancelling: the rollout stops and the hosts it switched go back to what they served before.")
    return _("Ticket cancelled.")


@login_required
@require_POST
def ticket_deploy(request: HttpRequest, pk: int) -> HttpResponse:
    # An Owner's "Override window" form posts a reason; the workflow decides.
    reason = request.POST.get("override_reason", "")
    return _act(request, _visible_ticket(request, pk), lambda t: workflow.deploy(request.user, t, reason),
                _("Deploy queued."))


@login_required
@require_POST
def ticket_promote(request: HttpRequest, pk: int) -> HttpResponse:
    return _act(request, _visible_ticket(request, pk), lambda t: workflow.promote(request.user, t),
                _("Promoted: the next batch switches."))


@login_required
@require_POST
def ticket_retry(request: HttpRequest, pk: int) -> HttpResponse:
    reason = request.POST.get("override_reason", "")
    return _act(request, _visible_ticket(request, pk), lambda t: workflow.retry(request.user, t, reason),
                _("Retry queued."))


@login_required
@require_POST
def ticket_schedule(request: HttpRequest, pk: int) -> HttpResponse:
    ticket = _visible_ticket(request, pk)
    form = ScheduleForm(ticket, request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(str(e) for errors in form.errors.values() for e in errors))
        return redirect("ticket_detail", pk=ticket.pk)
    at, version = form.cleaned_data["at"], form.cleaned_data["version"]
    return _act(request, ticket, lambda t: workflow.schedule(request.user, t, at, version), _("Deploy scheduled."))


@login_required
@require_POST
def ticket_unschedule(request: HttpRequest, pk: int) -> HttpResponse:
    return _act(request, _visible_ticket(request, pk), lambda t: workflow.unschedule(request.user, t),
                _("Schedule removed."))


@login_required
@require_POST
def ticket_rollback(request: HttpRequest, pk: int) -> HttpResponse:
    ticket = _visible_ticket(request, pk)
    form = RollbackForm(ticket, request.POST)
    if not form.is_valid():
        messages.error(request, _("Pick a release that is still kept."))
        return redirect("ticket_detail", pk=ticket.pk)
    try:
        rollback = workflow.request_rollback(request.user, ticket, release=form.cleaned_data["release"])
    except workflow.WorkflowError as exc:
        messages.error(request, str(exc))
        return redirect("ticket_detail", pk=ticket.pk)
    if rollback.status == S.APPROVED and can(request.user, Action.ROLLBACK, rollback):
        # No approval needed: the confirmation the user just gave runs it.
        try:
            workflow.deploy(request.user, rollback)
        except workflow.WorkflowError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, _("Rolling back: ticket #%(id)s is running.") % {"id": rollback.pk})
        return redirect("ticket_detail", pk=rollback.pk)
    messages.success(request, _("Rollback ticket #%(id)s opened; it runs once approved.") % {"id": rollback.pk})
    return redirect("ticket_detail", pk=rollback.pk)
