"""The HTML pages of tickets: thin views that parse input, ask the permission
policy, call one workflow or repository function, and render.

No status is changed here (only :mod:`releases.workflow` does that) and no
permission is decided here (only :mod:`accounts.permissions` does that).
"""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts.permissions import Action, can, get_visible_or_404, require, visible, visible_projects
from projects.models import Project, RepoMode

from . import repository, workflow
from .deploy.git import GitError
from .deploy.plan import Stage, Stream
from .forms import EditTicketForm, NewTicketForm, RejectForm, RollbackForm, TicketFilterForm
from .models import DeployRun, LogLine, Release, Ticket

S = Ticket.Status
STAGES = [stage.value for stage in Stage]
LOG_BATCH = 2000  # lines per JSON answer; the poller asks again at once when there are more
RUNNING_RUN = (DeployRun.Status.QUEUED, DeployRun.Status.RUNNING)


# --- helpers -------------------------------------------------------------------

def _moves(action: str, status: str) -> bool:
    """Does the workflow's transition table allow ``action`` from ``status``?"""
    return (action, status) in workflow.TRANSITIONS


def ticket_actions(user, ticket: Ticket) -> dict[str, bool]:
    """Which buttons to show: the policy allows it AND the status allows it."""
    status = ticket.status
    return {
        "approve": _moves("approve", status) and can(user, Action.APPROVE, ticket),
        "reject": _moves("reject", status) and can(user, Action.APPROVE, ticket),
        # Running a rollback ticket needs the rollback right, as in workflow.deploy.
        "deploy": _moves("deploy", status)
        and can(user, Action.ROLLBACK if ticket.is_rollback else Action.DEPLOY, ticket),
        "cancel": _moves("cancel", status) and can(user, Action.CANCEL, ticket),
        "edit": status in workflow.EDITABLE and can(user, Action.EDIT, ticket),
        "rollback": not ticket.is_rollback and can(user, Action.ROLLBACK, ticket)
        and workflow.switched_hosts(ticket).exists(),
    }


def _host_states(ticket: Ticket, run: DeployRun | None) -> list[dict]:
    """A chip per host: live stage from the log while running, RunHost.status after."""
    results = {r.host_id: r for r in run.host_results.all()} if run else {}
    running = run is not None and run.status in RUNNING_RUN
    chips = []
    for host in ticket.hosts.order_by("address", "port"):
        name = host.endpoint  # as the engine writes LogLine.host
        state, text = "idle", "—"
        if running:
            last = run.log_lines.filter(host=name).order_by("-seq").values_list("stage", "stream").first()
            if last is None:
                state, text = "waiting", _("waiting")
            else:
                state = "failed" if last[1] == Stream.ERROR else "running"
                text = last[0]
        elif host.pk in results:
            state, text = results[host.pk].status, results[host.pk].get_status_display()
        chips.append({"name": name, "label": host.label, "state": state, "text": text})
    return chips


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
        "run": run.number if run else None, "hosts": _host_states(ticket, run) if details else [],
    }


def _line(line: LogLine) -> dict:
    return {"seq": line.seq, "time": line.created_at.strftime("%H:%M:%S"), "host": line.host,
            "stage": line.stage, "stream": line.stream, "text": line.text}


def _act(request: HttpRequest, pk: int, perform: Callable[[Ticket], object], done: str) -> HttpResponse:
    """Run one workflow action on a visible ticket. A refused transition is a
    message; a PermissionDenied propagates to the 403 page with its reason."""
    ticket = get_visible_or_404(request.user, Ticket.objects.select_related("project__environment"), pk)
    try:
        perform(ticket)
    except workflow.WorkflowError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, done)
    return redirect("ticket_detail", pk=ticket.pk)


# --- pages -----------------------------------------------------------------------

@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    user = request.user
    pending = visible(user, Ticket.objects.filter(status=S.PENDING), Action.APPROVE)
    to_approve = [t for t in pending.select_related("project__environment", "author") if can(user, Action.APPROVE, t)]
    running = visible(user, Ticket.objects.filter(status__in=Ticket.ACTIVE_STATUSES)).select_related(
        "project__environment", "author")
    live = visible(user, Release.objects.filter(is_live=True)).select_related(
        "project__environment", "ticket__author", "run__triggered_by").order_by("project__name", "host__address")
    # One row per project and live commit; hosts on the same commit collapse.
    rows: dict[tuple[int, str], dict] = {}
    for release in live:
        row = rows.setdefault((release.project_id, release.commit), {"release": release, "hosts": 0})
        row["hosts"] += 1
    return render(request, "releases/dashboard.html", {
        "to_approve": to_approve, "running": running, "live_rows": list(rows.values()),
        "can_submit": visible_projects(user, Action.SUBMIT).exists(),
    })


@login_required
def ticket_list(request: HttpRequest) -> HttpResponse:
    form = TicketFilterForm(request.user, request.GET or None)
    tickets = visible(request.user, Ticket.objects.all()).select_related("project__environment", "author")
    tickets = form.filter(tickets).order_by("-created_at", "-id")
    page = Paginator(tickets, 25).get_page(request.GET.get("page"))
    return render(request, "releases/ticket_list.html", {"form": form, "page": page})


def _browse(project: Project | None, ref: str, commit: str, fetch: bool) -> dict:
    """What the chooser shows: the project's refs, the ref's recent commits and
    the preview of the chosen commit (default: the ref's tip) against live."""
    ctx: dict = {"refs": [], "commits": [], "preview": None, "commit": "", "repo_error": ""}
    if project is None:
        return ctx
    try:
        refs = repository.refs(project, fetch=fetch)
        ctx["refs"] = refs["tags" if project.repo_mode == RepoMode.TAG else "branches"]
        if ref in ctx["refs"]:
            ctx["commits"] = repository.commits(project, ref, limit=20)
            ctx["commit"] = repository.resolve(project, ref, commit).commit
            ctx["preview"] = repository.preview(project, ctx["commit"])
    except (repository.RepositoryError, GitError) as exc:
        ctx["repo_error"] = str(exc)
    return ctx


@login_required
def ticket_new(request: HttpRequest) -> HttpResponse:
    projects = visible_projects(request.user, Action.SUBMIT).filter(is_active=True).select_related("environment")
    source = request.POST if request.method == "POST" else request.GET
    project = projects.filter(pk=source.get("project")).first() if source.get("project", "").isdigit() else None
    ref, commit = source.get("ref", ""), source.get("commit", "")
    form = NewTicketForm(request.user, request.POST or None, project=project)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            ticket = workflow.submit(
                request.user, data["project"], title=data["title"], description=data["description"],
                ref=form.resolved.ref, commit=form.resolved.commit, hosts=data["hosts"],
            )
        except workflow.WorkflowError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, _("Ticket #%(id)s submitted.") % {"id": ticket.pk})
            return redirect("ticket_detail", pk=ticket.pk)
    ctx = _browse(project, ref, commit, fetch=bool(request.GET.get("refresh")))
    if request.method == "GET" and ctx["commit"]:
        form = NewTicketForm(request.user, project=project, initial={
            "project": project, "ref": ref, "commit": ctx["commit"], "hosts": list(project.hosts.filter(enabled=True)),
        })
    return render(request, "releases/ticket_new.html", {
        **ctx, "projects": projects, "project": project, "ref": ref, "form": form,
    })


@login_required
def ticket_detail(request: HttpRequest, pk: int) -> HttpResponse:
    tickets = Ticket.objects.select_related("project__environment", "author", "rollback_of")
    ticket = get_visible_or_404(request.user, tickets, pk)
    details = can(request.user, Action.VIEW_DETAILS, ticket)
    run = ticket.latest_run()
    actions = ticket_actions(request.user, ticket)
    return render(request, "releases/ticket_detail.html", {
        "ticket": ticket, "actions": actions, "details": details, "run": run,
        "events": ticket.events.select_related("actor"), "hosts": ticket.hosts.all(),
        "results": run.host_results.select_related("host") if run and details else [],
        "lines": run.log_lines.order_by("seq") if run and details else [],
        "console": console_state(ticket, run, details), "stages": STAGES,
        "reject_form": RejectForm() if actions["reject"] else None,
        "rollback_form": RollbackForm(ticket) if actions["rollback"] else None,
        "rollbacks": ticket.rollbacks.all(),
    })


@login_required
def ticket_log(request: HttpRequest, pk: int) -> JsonResponse:
    """New console lines of the latest run after ``after``, plus live status.
    Read-only: polling (or reloading) never touches the deploy."""
    ticket = get_visible_or_404(request.user, Ticket.objects.select_related("project__environment"), pk)
    try:
        require(request.user, Action.VIEW_DETAILS, ticket)
    except PermissionDenied as exc:
        return JsonResponse({"error": str(exc)}, status=403)
    after = int(request.GET["after"]) if request.GET.get("after", "").isdigit() else 0
    run = ticket.latest_run()
    lines = list(run.log_lines.filter(seq__gt=after).order_by("seq")[:LOG_BATCH]) if run else []
    return JsonResponse({
        **console_state(ticket, run, details=True), "lines": [_line(line) for line in lines],
        "last_seq": lines[-1].seq if lines else after, "more": len(lines) == LOG_BATCH,
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

@login_required
@require_POST
def ticket_approve(request: HttpRequest, pk: int) -> HttpResponse:
    return _act(request, pk, lambda t: workflow.approve(request.user, t), _("Ticket approved."))


@login_required
@require_POST
def ticket_reject(request: HttpRequest, pk: int) -> HttpResponse:
    reason = request.POST.get("reason", "")
    return _act(request, pk, lambda t: workflow.reject(request.user, t, reason), _("Ticket rejected."))


@login_required
@require_POST
def ticket_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    return _act(request, pk, lambda t: workflow.cancel(request.user, t), _("Ticket cancelled."))


@login_required
@require_POST
def ticket_deploy(request: HttpRequest, pk: int) -> HttpResponse:
    return _act(request, pk, lambda t: workflow.deploy(request.user, t), _("Deploy queued."))


@login_required
@require_POST
def ticket_rollback(request: HttpRequest, pk: int) -> HttpResponse:
    ticket = get_visible_or_404(request.user, Ticket.objects.select_related("project__environment"), pk)
    form = RollbackForm(ticket, request.POST)
    if not form.is_valid():
        messages.error(request, _("Pick a release that is still kept."))
        return redirect("ticket_detail", pk=ticket.pk)
    try:
        rollback = workflow.request_rollback(request.user, ticket, release=form.cleaned_data["release"])
    except workflow.WorkflowError as exc:
        messages.error(request, str(exc))
        return redirect("ticket_detail", pk=ticket.pk)
    messages.success(request, _("Rollback ticket #%(id)s opened.") % {"id": rollback.pk})
    return redirect("ticket_detail", pk=rollback.pk)
