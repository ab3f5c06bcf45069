from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import BooleanField, ExpressionWrapper, Q
from django.template.response import TemplateResponse
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext_lazy

from accounts import permissions
from accounts.admin import ScopedAdminMixin

from . import queries, workflow
from .forms import BadParameter, parse_count
from .models import Approval, DeployRun, LogLine, ProjectLock, Release, RunHost, Ticket, TicketEvent


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_view_permission(self, request, obj=None) -> bool:
        # Notes, run errors, per-host results and logs are deploy details: a Guest
        # (VIEW only) does not see them. ``obj`` is the parent (ticket or run).
        if obj is None:
            return request.user.is_active
        return permissions.can(request.user, permissions.Action.VIEW_DETAILS, obj)


class TicketEventInline(ReadOnlyInline):
    model = TicketEvent
    fields = ["created_at", "actor", "action", "from_status", "to_status", "note"]
    readonly_fields = fields


class ApprovalInline(ReadOnlyInline):
    """Who approved which version; only those of the current version count."""

    model = Approval
    fields = ["created_at", "approver", "version"]
    readonly_fields = fields


class RunInline(ReadOnlyInline):
    model = DeployRun
    fields = ["number", "status", "triggered_by", "release_name", "commit", "started_at", "finished_at", "error"]
    readonly_fields = fields
    show_change_link = True


# What an admin action reports, by how many tickets it moved.
APPROVED = ngettext_lazy("Approved %(count)d ticket.", "Approved %(count)d tickets.", "count")
QUEUED = ngettext_lazy("Queued %(count)d ticket.", "Queued %(count)d tickets.", "count")
CANCELLED = ngettext_lazy("Cancelled %(count)d ticket.", "Cancelled %(count)d tickets.", "count")
# A waiting rollout is not cancelled yet: the worker switches its hosts back first.
CANCELLING = ngettext_lazy("Cancelling %(count)d rollout: its hosts go back first.",
                           "Cancelling %(count)d rollouts: their hosts go back first.", "count")


def _run_action(modeladmin, request, queryset, func, done_message: Promise | None = None) -> list:
    """Apply one workflow function per ticket; report each refusal by name,
    then, given ``done_message``, how many were done. Returns what ``func``
    returned for each ticket it did not refuse."""
    done = []
    for ticket in queryset:
        try:
            done.append(func(request.user, ticket))
        except (PermissionDenied, workflow.WorkflowError) as exc:
            modeladmin.message_user(request, f"#{ticket.pk}: {exc}", messages.ERROR)
    if done_message is not None:
        _report(modeladmin, request, done_message, len(done))
    return done


def _report(modeladmin, request, message: Promise, count: int) -> None:
    """``message`` is a lazy translation with a "count" placeholder; nothing for 0."""
    if count:
        modeladmin.message_user(request, message % {"count": count})


def _approve_as_shown(request):
    """An approval names what it approves: the confirmation page shows each
    ticket (ref, commit, hosts) and carries the version shown; a ticket
    edited since is refused by the workflow."""

    def approve(actor, ticket: Ticket) -> Ticket:
        try:
            seen = parse_count(request.POST.get(f"version_{ticket.pk}"), "version")
        except BadParameter as exc:
            raise workflow.WorkflowError(str(exc)) from None
        if seen is None:
            raise workflow.WorkflowError(_("review it on the confirmation page first"))
        return workflow.approve(actor, ticket, version=seen)

    return approve


@admin.register(Ticket)
class TicketAdmin(ScopedAdminMixin, admin.ModelAdmin):
    """Tickets are read here; every change goes through the workflow actions."""

    detail_action = permissions.Action.VIEW
    list_display = ["id", "title", "project", "kind", "status", "ref", "short_commit", "author", "created_at"]
    # Filter choices come from the rows the user may see, never from all projects.
    list_filter = ["status", "kind", "project__environment", ("project", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["title", "ref", "author__username"]
    detail_search_fields = ["commit"]  # commits are details: Guests may not even ask about them
    date_hierarchy = "created_at"
    inlines = [ApprovalInline, TicketEventInline, RunInline]
    actions = ["approve", "deploy", "cancel"]
    list_select_related = ["project", "author"]

    def get_queryset(self, request):
        # One query tells each row whether its commit may be shown.
        details = permissions.visible(request.user, Ticket.objects.all(), permissions.Action.VIEW_DETAILS)
        shows = ExpressionWrapper(Q(pk__in=details.values("pk")), output_field=BooleanField())
        return super().get_queryset(request).annotate(walle_shows_details=shows)

    @admin.display(description=gettext_lazy("commit"))
    def short_commit(self, obj) -> str:
        return obj.commit[:10] if getattr(obj, "walle_shows_details", False) else ""

    # Shown only with VIEW_DETAILS, as on the HTML ticket page (Guests see status).
    detail_fields = ("commit", "hosts")

    def get_readonly_fields(self, request, obj=None):
        fields = [f.name for f in self.model._meta.fields] + ["hosts"]
        if obj is not None and not permissions.can(request.user, permissions.Action.VIEW_DETAILS, obj):
            fields = [f for f in fields if f not in self.detail_fields]
        return fields

    def get_fields(self, request, obj=None):
        return self.get_readonly_fields(request, obj)

    def has_add_permission(self, request) -> bool:
        return False  # tickets are opened from the ticket page or the API

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # the audit trail is append-only

    def has_approve_permission(self, request) -> bool:
        return permissions.can_anywhere(request.user, permissions.Action.APPROVE)

    def has_deploy_permission(self, request) -> bool:
        return permissions.can_anywhere(request.user, permissions.Action.DEPLOY_OWN)

    def has_cancel_permission(self, request) -> bool:
        return permissions.can_anywhere(request.user, permissions.Action.SUBMIT)

    @admin.action(description=gettext_lazy("Approve selected tickets"), permissions=["approve"])
    def approve(self, request, queryset):
        if request.POST.get("confirm") != "yes":
            tickets = queries.with_approval_counts(queryset.select_related("project__environment")).prefetch_related(
                "hosts")
            context = {**self.admin_site.each_context(request), "tickets": tickets, "opts": self.model._meta,
                       "title": _("Approve these tickets?")}
            return TemplateResponse(request, "admin/releases/ticket/approve_confirmation.html", context)
        # A ticket that needs more approvals stays pending; the list shows its status.
        _run_action(self, request, queryset, _approve_as_shown(request), APPROVED)
        return None

    @admin.action(description=gettext_lazy("Deploy selected tickets"), permissions=["deploy"])
    def deploy(self, request, queryset) -> None:
        _run_action(self, request, queryset, workflow.deploy, QUEUED)

    @admin.action(description=gettext_lazy("Cancel selected tickets"), permissions=["cancel"])
    def cancel(self, request, queryset) -> None:
        moved = _run_action(self, request, queryset, workflow.cancel)
        cancelling = sum(ticket.status == Ticket.Status.CANCELLING for ticket in moved)
        _report(self, request, CANCELLED, len(moved) - cancelling)
        _report(self, request, CANCELLING, cancelling)




class RecordAdmin(ScopedAdminMixin, admin.ModelAdmin):
    """Records written by the worker: visible per the policy, never edited here."""

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class RunHostInline(ReadOnlyInline):
    model = RunHost
    fields = ["host", "status", "previous_release", "release", "duration", "error"]
    readonly_fields = fields


class LogLineInline(ReadOnlyInline):
    model = LogLine
    fields = ["seq", "created_at", "host", "stage", "stream", "text"]
    readonly_fields = fields


@admin.register(DeployRun)
class DeployRunAdmin(RecordAdmin):
    list_display = ["__str__", "status", "triggered_by", "release_name", "started_at", "finished_at"]
    list_filter = ["status"]
    inlines = [RunHostInline, LogLineInline]


@admin.register(Release)
class ReleaseAdmin(RecordAdmin):
    # A release row is a host address and a commit: deploy details, so the
    # list shows only releases of projects whose details the user may see.
    view_action = permissions.Action.VIEW_DETAILS
    list_display = ["name", "project", "host", "commit", "ticket", "is_live", "switched_at", "removed_at"]
    list_filter = ["is_live", ("project", admin.RelatedOnlyFieldListFilter)]


@admin.register(ProjectLock)
class ProjectLockAdmin(RecordAdmin):
    list_display = ["project", "run", "owner", "acquired_at", "heartbeat_at", "lease_seconds"]
    actions = ["release"]

    def has_release_permission(self, request) -> bool:
        return permissions.can_anywhere(request.user, permissions.Action.CONFIGURE)

    def has_module_permission(self, request) -> bool:
        # Releasing a stuck lock is all one does here: only those who may.
        return self.has_release_permission(request)

    @admin.action(description=gettext_lazy("Release selected locks (their runs end as failed)"), permissions=["release"])
    def release(self, request, queryset) -> None:
        for lock in queryset.select_related("project"):
            try:
                workflow.release_lock(request.user, lock.project)
            except PermissionDenied as exc:
                self.message_user(request, f"{lock.project}: {exc}", messages.ERROR)
